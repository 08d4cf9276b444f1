"""The real ChatOpenAI client, through the `dealflow` executable, against a local server."""

from __future__ import annotations

import json

from tests.conftest import cli_env, run_cli
from tests.fake_openai import FakeOpenAI
from tests.helpers import ONE_EACH
from tests.llm_script import sensible


def test_llm_supervisor_over_http_with_a_429_then_success(database_url: str) -> None:
    server = FakeOpenAI(sensible, fail_first=1, fail_status=429)
    env = cli_env(database_url, OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY="sk-test-123",
                  DEALFLOW_LLM_MODEL="gpt-4o-mini")
    try:
        run = run_cli(["run", "--deal-id", "HTTP-1", "--client", "Acme", "--value", "9000",
                       "--supervisor", "llm", "--json"], env)
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout)["status"] == "waiting_signature"
        done = run_cli(["event", "HTTP-1", "signature.completed", "--json"], env)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
    finally:
        server.close()
    assert report["status"] == "completed" and report["supervisor"] == "llm"
    assert report["usage"]["calls"] == 5 and report["usage"]["prompt_tokens"] == 5 * 900
    assert report["summary"].startswith("Deal HTTP-1 is finished")
    assert server.statuses[:2] == [429, 200]
    first = server.requests[0]
    assert first["path"] == "/v1/chat/completions"
    assert first["authorization"] == "Bearer sk-test-123"
    assert first["body"]["model"] == "gpt-4o-mini"
    assert {t["function"]["name"] for t in first["body"]["tools"]} >= {"invoke_lead_agent"}
    records = json.loads(run_cli(["records", "HTTP-1", "--json"], env).stdout)
    assert {k: len(records[k]) for k in ONE_EACH} == ONE_EACH


def test_provider_down_escalates_to_review_then_retry_works(database_url: str) -> None:
    server = FakeOpenAI(sensible, fail_first=100, fail_status=500)
    env = cli_env(database_url, OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY="sk-test",
                  DEALFLOW_LLM_MAX_RETRIES="1")
    try:
        run = run_cli(["run", "--deal-id", "HTTP-2", "--client", "Acme", "--value", "9000",
                       "--supervisor", "llm", "--json"], env)
        report = json.loads(run.stdout)
        assert run.returncode == 0, run.stderr
        assert report["status"] == "waiting_review"
        assert report["context"]["failures"][0]["step"] == "supervisor"
        assert "500" in report["context"]["failures"][0]["error"]
        assert len(server.requests) == 2  # the first try and one retry
        server.fail_first = 0
        again = run_cli(["resume", "HTTP-2", "--decision", "retry", "--json"], env)
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["status"] == "waiting_signature"
    finally:
        server.close()


def test_llm_mode_without_a_key_fails_at_start(database_url: str) -> None:
    done = run_cli(["run", "--deal-id", "HTTP-3", "--client", "Acme", "--value", "9000",
                    "--supervisor", "llm"], cli_env(database_url))
    assert done.returncode == 2
    assert "need OPENAI_API_KEY" in done.stderr and len(done.stderr.splitlines()) == 1
    threads = run_cli(["threads", "--json"], cli_env(database_url))
    assert json.loads(threads.stdout)["threads"] == []

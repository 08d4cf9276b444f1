"""LangSmith traces per deal (captured by a local server) and local span timelines."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from dealflow.api import DealService, thread_id_for
from state.config import Settings
from tests.conftest import cli_env, run_cli
from tests.fake_langsmith import FakeLangSmith
from tests.helpers import GOOD_LEAD, make_deal

OPENAI_KEY = "sk-test-DoNotLeak0123456789"
NOTES_TOKEN = "api_key=ZZ-notes-secret-777"


def _tracing_env(database_url: str, server: FakeLangSmith, **extra: str) -> dict[str, str]:
    return cli_env(database_url, LANGSMITH_TRACING="true", LANGSMITH_ENDPOINT=server.url,
                   LANGSMITH_API_KEY="lsv2_pt_test_0123456789", LANGSMITH_PROJECT="dealflow-ci",
                   OPENAI_API_KEY=OPENAI_KEY, **extra)


def test_every_run_of_a_deal_is_traced_with_its_ids_and_no_secrets(
        database_url: str, tmp_path: Path) -> None:
    lead = tmp_path / "lead.json"
    lead.write_text(json.dumps({**GOOD_LEAD, "budget": "100000",
                                "notes": f"call after 5pm, {NOTES_TOKEN}"}))
    server = FakeLangSmith()
    try:
        env = _tracing_env(database_url, server)
        first = run_cli(["run", "--deal-id", "LS-1", "--client", "Acme", "--value", "60000",
                         "--lead", str(lead), "--json"], env)
        assert first.returncode == 0, first.stderr
        after_first = set(server.runs())
        second = run_cli(["resume", "LS-1", "--decision", "approve", "--json"], env)
        assert second.returncode == 0, second.stderr
        runs = server.runs()
    finally:
        server.close()
    assert after_first and set(runs) > after_first  # the resume, in a new process, traced too
    named = {run_id: run for run_id, run in runs.items() if "name" in run}
    names = {run["name"] for run in named.values()}
    assert {"deal LS-1", "supervisor", "qualify_lead", "human_review", "create_project",
            "generate_contract", "send_for_signature"} <= names
    for run in named.values():
        metadata = run["extra"]["metadata"]
        assert metadata["deal_id"] == "LS-1" and metadata["thread_id"] == thread_id_for("LS-1")
        assert metadata["supervisor"] == "rules"
    roots = [r for r in named.values() if r["name"] == "deal LS-1"]
    assert len(roots) == 2  # one per invocation, grouped by thread_id
    for run in named.values():
        if run["name"] != "deal LS-1":
            assert run.get("parent_run_id") in named or run["trace_id"] in named
    node_runs = [r for r in named.values() if r["name"] == "qualify_lead"]
    assert node_runs[0]["extra"]["metadata"]["agent"] == "lead"
    step_runs = [r for r in named.values() if r["name"] in (
        "qualify_lead", "create_project", "generate_contract", "send_for_signature",
        "supervisor", "human_review")]
    assert step_runs and all(len(r["extra"]["metadata"]["checkpoint_id"]) > 20
                             for r in step_runs)
    assert OPENAI_KEY.encode() not in server.raw
    assert b"ZZ-notes-secret-777" not in server.raw
    assert b"call after 5pm" in server.raw  # the notes themselves are traced


def test_tracing_off_sends_nothing(database_url: str) -> None:
    server = FakeLangSmith()
    try:
        env = cli_env(database_url, LANGSMITH_ENDPOINT=server.url,
                      LANGSMITH_API_KEY="lsv2_pt_test_0123456789")
        done = run_cli(["run", "--deal-id", "LS-2", "--client", "Acme", "--value", "100"], env)
        assert done.returncode == 0, done.stderr
    finally:
        server.close()
    assert server.requests == []


def test_span_timeline_shows_outage_retries_review_and_waits(settings: Settings) -> None:
    slow = settings.model_copy(update={"sandbox_outage": {"esign": 3},
                                       "sandbox_latency_ms": 40})
    with DealService(slow) as service:
        service.start(make_deal("SPAN-1"))
        service.resume("SPAN-1", {"decision": "retry"})
        service.event("SPAN-1", "signature.completed")
        _, spans = service.trace(thread_id_for("SPAN-1"))
        sends = [s for s in spans if s.node == "send_for_signature"]
        assert [(s.attempt, s.status) for s in sends] == [
            (1, "error"), (2, "error"), (3, "error"), (1, "ok")]
        assert all(s.duration_ms >= 40 for s in sends)  # the latency is inside the attempt
        assert "esign: simulated outage" in (sends[0].error or "")
        waiting = [s.node for s in spans if s.status == "waiting"]
        assert waiting == ["human_review", "await_signature"]
        project = next(s for s in spans if s.node == "create_project")
        contract = next(s for s in spans if s.node == "generate_contract")
        end = min(project.started_at + timedelta(milliseconds=project.duration_ms),
                  contract.started_at + timedelta(milliseconds=contract.duration_ms))
        assert max(project.started_at, contract.started_at) < end  # parallel: they overlap
        stats = service.stats()
        esign = next(r for r in stats["systems"] if r["system"] == "esign")
        assert (esign["failures"], esign["retries"]) == (3, 2)
        steps = {r["node"]: r for r in stats["steps"]}
        assert steps["send_for_signature"]["median_ms"] >= 40
        assert stats["deals_by_status"] == {"completed": 1}


def test_trace_and_stats_commands(database_url: str) -> None:
    env = cli_env(database_url, DEALFLOW_SANDBOX_OUTAGE="pm:1")
    assert run_cli(["run", "--deal-id", "TR-1", "--client", "Acme", "--value", "100"],
                   env).returncode == 0
    trace = run_cli(["trace", "TR-1"], env)
    assert trace.returncode == 0, trace.stderr
    assert "create_project (attempt 2)" in trace.stdout
    assert "⏸" not in trace.stdout.split("await_signature")[0]
    data = json.loads(run_cli(["trace", "TR-1", "--json"], env).stdout)
    assert {s["node"] for s in data["spans"]} >= {"qualify_lead", "await_signature"}
    stats = run_cli(["stats", "--since", "1h"], env)
    assert stats.returncode == 0 and "create_project" in stats.stdout
    bad = run_cli(["stats", "--since", "yesterday"], env)
    assert bad.returncode == 2 and "duration must look like" in bad.stderr

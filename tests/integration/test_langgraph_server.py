"""The graph served by LangGraph Server (`langgraph dev`), driven with langgraph-sdk.

Both directions: a deal started through the SDK is read and finished by the
CLI's service, and a deal started by the CLI is opened and driven through the SDK.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dealflow.api import DealService
from state.registry import thread_id_for
from tests.conftest import ROOT, cli_env, run_cli
from tests.helpers import ONE_EACH, counts, deal_data


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _langgraph_dev(database_url: str, tmp_path: Path) -> Iterator[Any]:
    """`langgraph dev` on the test database, and a sync SDK client for it."""
    from langgraph_sdk import get_sync_client

    port = _free_port()
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "langgraph"), "dev", "--no-reload", "--no-browser",
         "--port", str(port)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        env=cli_env(database_url, LANGSMITH_TRACING="false"))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/ok", timeout=1).read()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, \
                    (tmp_path / "server.log").read_text()[-3000:]
                time.sleep(0.2)
        yield get_sync_client(url=base)
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()


def test_langgraph_dev_runs_a_deal_through_review_and_signature(
        database_url: str, service: DealService, tmp_path: Path) -> None:
    with _langgraph_dev(database_url, tmp_path) as client:
        thread = client.threads.create()["thread_id"]
        client.runs.wait(thread, "dealflow", input={"deal": deal_data("SRV-1", "60000.00")})
        state = client.threads.get_state(thread)
        assert state["next"] == ["human_review"]
        request = state["interrupts"][0]["value"]
        assert request["action_requests"][0]["name"] == "approve_deal"
        client.runs.wait(thread, "dealflow", command={"resume": {"decision": "approve"}})
        assert client.threads.get_state(thread)["next"] == ["await_signature"]
        # the same deal, read by the Python API / CLI while it waits: one registry, one store
        waiting = service.status("SRV-1")
        assert (waiting.thread_id, waiting.status) == (thread, "waiting_signature")
        client.runs.wait(thread, "dealflow", command={"resume": "signature.completed"})
        final = client.threads.get_state(thread)
        assert final["next"] == [] and final["values"]["outcome"] == "completed"
        assert final["values"]["invoice"]["issued_on"].count("-") == 2  # a date, not a list
        deal = final["values"]["deal"]  # the deal as the graph holds it, defaults included
        assert (deal["currency"], deal["deal_type"]) == ("USD", "implementation")
        history = client.threads.get_history(thread, limit=100)
        assert len(history) > 10 and history[0]["values"]["outcome"] == "completed"
        assert [d.deal_id for d, _ in service.threads("completed")] == ["SRV-1"]
    assert counts(service.records("SRV-1")) == ONE_EACH
    assert service.status("SRV-1").status == "completed"


def test_a_deal_started_by_the_cli_is_opened_and_driven_through_the_sdk(
        database_url: str, service: DealService, tmp_path: Path) -> None:
    env = cli_env(database_url)
    started = run_cli(["run", "--deal-id", "CLI-1", "--client", "Globex", "--value", "68000",
                       "--json"], env)
    assert started.returncode == 0, started.stderr
    thread = json.loads(started.stdout)["thread_id"]
    assert thread == thread_id_for("CLI-1")  # a UUID: the server's thread API takes it
    with _langgraph_dev(database_url, tmp_path) as client:
        client.threads.create(thread_id=thread, graph_id="dealflow", if_exists="do_nothing")
        state = client.threads.get_state(thread)
        assert state["next"] == ["human_review"]
        assert state["values"]["deal"]["client"] == "Globex"
        assert state["interrupts"][0]["value"]["action_requests"][0]["name"] == "approve_deal"
        client.runs.wait(thread, "dealflow",
                         command={"resume": {"decision": "approve", "comment": "via SDK"}})
        status = json.loads(run_cli(["status", "CLI-1", "--json"], env).stdout)
        assert status["status"] == "waiting_signature"
        assert status["context"]["reviews"][-1]["comment"] == "via SDK"
        finished = run_cli(["event", "CLI-1", "signature.completed"], env)
        assert finished.returncode == 0, finished.stderr
        history = client.threads.get_history(thread, limit=100)
        assert history[0]["values"]["outcome"] == "completed"
    assert counts(service.records("CLI-1")) == ONE_EACH

"""The embedded Postgres as a newcomer meets it: one per user, named, and never left running.

Real processes on a real embedded server (no `DATABASE_URL`): the CLI from two
folders sees one database and says which one it started; `dealflow serve`,
`dealflow mcp --transport http` and `langgraph dev` stop the server they started
when they get SIGTERM (or SIGINT).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from state.embedded import postmaster_pid
from tests.conftest import ROOT, cli_env, dealflow_executable, run_cli
from tests.integration.service_procs import free_port


@pytest.fixture(scope="module")
def data_home() -> Iterator[Path]:
    """An XDG_DATA_HOME of its own (short: the server's socket lives under it)."""
    path = Path(tempfile.mkdtemp(prefix="dfe-", dir="/tmp"))
    yield path
    pid = postmaster_pid(path / "dealflow" / "pgdata")
    if pid is not None:  # a failed test's server: stop it, it is ours
        os.kill(pid, signal.SIGTERM)
        _wait_for(lambda: postmaster_pid(path / "dealflow" / "pgdata") is None, 30)
    shutil.rmtree(path, ignore_errors=True)


def _env(data_home: Path, **extra: str) -> dict[str, str]:
    env = cli_env(None, XDG_DATA_HOME=str(data_home), LANGSMITH_TRACING="false", **extra)
    env.pop("DEALFLOW_DATA_DIR", None)
    return env


def _wait_for(condition: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return bool(condition())  # type: ignore[operator]


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).read()
        return True
    except OSError as exc:  # an HTTP error status is an answer too
        return hasattr(exc, "code")


def test_the_cli_uses_one_database_per_user_from_any_folder(data_home: Path,
                                                            tmp_path: Path) -> None:
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    env = _env(data_home)
    pgdata = data_home / "dealflow" / "pgdata"
    run = run_cli(["run", "--deal-id", "NEW-1", "--client", "Acme", "--value", "9000",
                   "--lead", str(ROOT / "examples" / "lead.json")], env, cwd=here, cold=True)
    assert run.returncode == 0, run.stderr
    started = [line for line in run.stderr.splitlines() if "embedded Postgres" in line]
    assert started == [f"dealflow: started the embedded Postgres in {pgdata} (DATABASE_URL "
                       "or --database-url for another server)"]
    assert postmaster_pid(pgdata) is None  # the CLI's command stopped it again

    (there / ".dealflow" / "pgdata").mkdir(parents=True)  # an older dealflow's database
    (there / ".dealflow" / "pgdata" / "PG_VERSION").write_text("18\n")
    listed = run_cli(["threads", "--json"], env, cwd=there, cold=True)
    assert listed.returncode == 0, listed.stderr
    assert [t["deal_id"] for t in json.loads(listed.stdout)["threads"]] == ["NEW-1"]
    assert "started the embedded Postgres" not in listed.stderr  # --json: not a word
    assert listed.stderr.startswith(f"dealflow: note: {there / '.dealflow' / 'pgdata'} "
                                    "holds an older dealflow's per-folder database")
    assert len(listed.stderr.splitlines()) == 1


def _serve(port: int) -> list[str]:
    return [dealflow_executable(), "serve", "--port", str(port), "--workers", "1"]


def _mcp(port: int) -> list[str]:
    return [dealflow_executable(), "mcp", "--transport", "http", "--port", str(port)]


def _langgraph_dev(port: int) -> list[str]:
    return [str(Path(sys.executable).parent / "langgraph"), "dev", "--no-reload",
            "--no-browser", "--port", str(port)]


@pytest.mark.parametrize(("command", "ready", "signum"), [
    (_serve, "/healthz", signal.SIGTERM),
    (_serve, "/healthz", signal.SIGINT),
    (_mcp, "/mcp", signal.SIGTERM),
    (_langgraph_dev, "/ok", signal.SIGTERM),
], ids=["serve-sigterm", "serve-sigint", "mcp-http-sigterm", "langgraph-dev-sigterm"])
def test_a_stopped_server_stops_the_embedded_postgres_it_started(
        data_home: Path, tmp_path: Path, command: object, ready: str, signum: int) -> None:
    pgdata = data_home / "dealflow" / "pgdata"
    port = free_port()
    with (tmp_path / "server.log").open("w") as log:
        proc = subprocess.Popen(command(port), cwd=ROOT, env=_env(data_home),  # type: ignore[operator]
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        up = _wait_for(lambda: proc.poll() is None and _answers(
            f"http://127.0.0.1:{port}{ready}"), 120)
        assert up, (tmp_path / "server.log").read_text()[-3000:]
        postmaster = postmaster_pid(pgdata)
        assert postmaster is not None
        proc.send_signal(signum)
        proc.wait(timeout=60)
        assert _wait_for(lambda: postmaster_pid(pgdata) is None, 30), \
            f"postmaster {postmaster} still runs; " + (tmp_path / "server.log").read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

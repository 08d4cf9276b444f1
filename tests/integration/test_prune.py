"""`dealflow prune`: the history of ended deals goes, what each deal did stays answerable.

1,000 ended deals (four real ones of each ending and copies of them), a completed
deal forked since it ended, a deal that ended just now and 100 waiting deals: a
prune of deals ended 90 days ago leaves one checkpoint of each of the 1,000,
archives their whole history first, and changes nothing else.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from dealflow.api import DealService
from dealflow.archive import read_archive
from dealflow.cli import main as cli_main
from dealflow.prune import ENDED, prune
from state.leases import Leases
from tests.conftest import cli_env, run_cli
from tests.helpers import make_deal
from tests.integration.prune_deals import (
    REAL_ENDED,
    TABLES,
    age_ended,
    copy_ended,
    fork_after_end,
    missing_blobs,
    registry_threads,
    rows_per_thread,
    run_real_ended,
    sign_all,
    start_waiting,
)


def _cli(service: DealService, capsys: Any, *args: str) -> tuple[int, str, str]:
    code = cli_main([*args, "--database-url", service.settings.database_url or ""],
                    service=service)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _what_it_did(service: DealService, deal_id: str) -> dict[str, Any]:
    return {"status": service.status(deal_id).model_dump(mode="json"),
            "records": service.records(deal_id), "audit": service.audit(deal_id),
            "facts": service.facts(deal_id), "trace": service.trace(deal_id)[1]}


def test_prune_keeps_one_checkpoint_of_each_ended_deal_and_nothing_else_changes(
        service: DealService, tmp_path: Path, capsys: Any) -> None:
    pool = service.pool
    run_real_ended(service)
    copy_ended(pool, 1000)
    fork_after_end(service, "E-F")  # completed, then forked: its latest checkpoint has steps
    age_ended(pool, 100)
    service.start(make_deal("E-NEW"))
    service.event("E-NEW", "signature.completed")  # ended just now
    waiting = start_waiting(service, 100)
    old = {t: d for t, d in registry_threads(pool, ENDED).items()
           if d not in ("E-F", "E-NEW")}
    assert len(old) == 1000
    before, absent = rows_per_thread(pool), missing_blobs(pool)
    did = {deal_id: _what_it_did(service, deal_id) for deal_id in REAL_ENDED}

    archive = tmp_path / "archive"
    code, out, err = _cli(service, capsys, "prune", "--ended-before", "90d",
                          "--archive", str(archive), "--json")
    assert code == 0, err
    run = json.loads(out)
    assert {p["thread_id"]: p["deal_id"] for p in run["pruned"]} == old
    assert [(s["deal_id"], s["reason"]) for s in run["skipped"]] == [("E-F", "live")]
    after = rows_per_thread(pool)
    assert all(after[t]["checkpoints"] == 1 for t in old)
    assert all(after[t] == before[t] for t in before if t not in old)  # waiting, fork, new
    assert {table: sum(before[t][table] - after[t][table] for t in before)
            for table in TABLES} == {"checkpoints": run["deleted"]["checkpoints"],
                                     "checkpoint_blobs": run["deleted"]["blobs"],
                                     "checkpoint_writes": run["deleted"]["writes"]}
    assert missing_blobs(pool) <= absent  # every blob a checkpoint left reads

    _each_archive_holds_the_history(run["pruned"], before)
    assert {deal_id: _what_it_did(service, deal_id) for deal_id in REAL_ENDED} == did
    code, out, _ = _cli(service, capsys, "status", "E-C", "--json")
    assert code == 0 and json.loads(out)["status"] == "completed"
    code, out, _ = _cli(service, capsys, "history", "E-C")
    archived = next(p["archive"] for p in run["pruned"] if p["deal_id"] == "E-C")
    assert code == 0 and "pruned" in out and archived in out
    code, out, _ = _cli(service, capsys, "history", "E-C", "--json")
    shown = json.loads(out)
    assert len(shown["history"]) == 1 and shown["pruned"][0]["archive"] == archived
    assert shown["pruned"][0]["checkpoints"] == before[service.deal("E-C").thread_id][
        "checkpoints"] - 1

    assert sign_all(service, waiting) == {"completed"}  # untouched, and they resume
    again = prune(pool, timedelta(0))  # now they have ended too (and E-NEW)
    assert {p.deal_id for p in again.pruned} == {*waiting, "E-NEW"}
    assert [s.deal_id for s in again.skipped] == ["E-F"]


def _each_archive_holds_the_history(pruned: list[dict[str, Any]],
                                    before: dict[str, dict[str, int]]) -> None:
    """Every checkpoint, blob and write a pruned thread had is in its archive."""
    for done in pruned:
        lines = read_archive(done["archive"])
        thread = done["thread_id"]
        assert len(lines) == before[thread]["checkpoints"]
        assert [c.checkpoint_id for c in lines if c.kept] == [done["kept_checkpoint_id"]]
        assert len({(b.channel, b.version) for c in lines for b in c.blobs}) == \
            before[thread]["checkpoint_blobs"]
        assert sum(len(c.writes) for c in lines) == before[thread]["checkpoint_writes"]


def test_an_archive_reads_back_into_every_state_the_deal_went_through(
        service: DealService, tmp_path: Path) -> None:
    run_real_ended(service)
    thread = service.deal("E-C").thread_id
    config = {"configurable": {"thread_id": thread}}
    states = {s.config["configurable"]["checkpoint_id"]: s.values.get("completed_steps", [])
              for s in service.graph.get_state_history(config)}  # type: ignore[arg-type]
    run = prune(service.pool, timedelta(0), archive=tmp_path)
    path = next(p.archive for p in run.pruned if p.thread_id == thread)
    assert path is not None and Path(path).parent == tmp_path
    serde = service.graph.checkpointer.serde  # type: ignore[union-attr]
    restored = {}
    for line in read_archive(path):
        blobs = {b.channel: serde.loads_typed((b.type, b.blob)) for b in line.blobs
                 if b.type != "empty"}
        values = {**line.checkpoint["channel_values"], **blobs}
        restored[line.checkpoint_id] = values.get("completed_steps", [])
    assert restored == states
    assert len(list(service.graph.get_state_history(config))) == 1  # type: ignore[arg-type]


def test_a_thread_another_process_holds_is_left_for_the_next_prune(
        service: DealService) -> None:
    run_real_ended(service)
    held = service.deal("E-C").thread_id
    before = rows_per_thread(service.pool)[held]
    other = Leases(service.pool, seconds=30)
    try:
        with other.hold(held):
            run = prune(service.pool, timedelta(0))
            assert [(s.deal_id, s.reason) for s in run.skipped] == [("E-C", "busy")]
            assert {p.deal_id for p in run.pruned} == set(REAL_ENDED) - {"E-C"}
            assert rows_per_thread(service.pool)[held] == before
    finally:
        other.close()
    assert [p.deal_id for p in prune(service.pool, timedelta(0)).pruned] == ["E-C"]


def test_a_dry_run_changes_nothing_and_bad_flags_are_one_line(
        service: DealService, database_url: str, capsys: Any) -> None:
    run_real_ended(service)
    before = rows_per_thread(service.pool)
    code, out, _ = _cli(service, capsys, "prune", "--ended-before", "0s", "--dry-run")
    assert code == 0 and out.startswith("would prune 4 deals")
    assert rows_per_thread(service.pool) == before
    code, out, _ = _cli(service, capsys, "prune", "--ended-before", "1d")
    assert code == 0 and out.startswith("nothing to prune")
    by_setting = run_cli(["prune", "--dry-run"], cli_env(database_url, DEALFLOW_RETENTION="0s"))
    assert by_setting.stdout.startswith("would prune 4 deals"), by_setting.stderr
    for flags, said in ((["--ended-before", "banana"], "duration must look like 90s"),
                        ([], "--ended-before DURATION is required"),
                        (["--ended-before", "0s", "--batch", "0"], "between 1 and 1000")):
        done = run_cli(["prune", *flags], cli_env(database_url))
        assert done.returncode == 2 and done.stdout == ""
        assert said in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert rows_per_thread(service.pool) == before
    helped = run_cli(["prune", "--help"], cli_env(database_url))
    assert helped.returncode == 0 and "what stays:" in helped.stdout

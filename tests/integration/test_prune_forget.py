"""`dealflow prune --forget-before`: a deal that ended long ago is forgotten whole.

52 ended deals (four real ones of each ending, with their audit trail, effects,
facts, spans and waits, and copies) and ten waiting deals: forgetting the ended
ones leaves no row of them in any dealflow or LangGraph table but the tombstone,
every row is in its archive first, the systems' records stay, and the waiting
deals are untouched and still finish.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from dealflow.api import DealService
from dealflow.archive import read_forgotten
from dealflow.cli import main as cli_main
from dealflow.errors import DealConflict
from dealflow.prune import ENDED, prune
from dealflow.prune_forget import forget
from dealflow.prune_forget_sql import TABLES
from dealflow.service.retention import retention_run
from state.config import ConfigError
from tests.conftest import cli_env, run_cli
from tests.helpers import make_deal
from tests.integration.forget_deals import (
    TOMBSTONES,
    archived_rows,
    deal_tables,
    rows_of,
    tombstones,
    without_prune_leases,
)
from tests.integration.prune_deals import (
    REAL_ENDED,
    age_ended,
    copy_ended,
    registry_threads,
    run_real_ended,
    sign_all,
    start_waiting,
)

SEVEN_YEARS = 7 * 365


def _cli(service: DealService, capsys: Any, *args: str) -> tuple[int, str, str]:
    code = cli_main([*args, "--database-url", service.settings.database_url or ""],
                    service=service)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_forget_covers_every_table_that_names_a_deal(service: DealService) -> None:
    """A table a migration adds with a deal_id or thread_id column must be forgotten too."""
    tables = {t for t in deal_tables(service.pool) if not t.startswith("sandbox_")}
    assert tables - {TOMBSTONES} == {table for table, _ in TABLES}


def test_forgetting_52_ended_deals_leaves_only_their_tombstones(
        service: DealService, tmp_path: Path, capsys: Any) -> None:
    pool = service.pool
    run_real_ended(service)
    copy_ended(pool, 52)  # 4 real ones and 12 copies of each
    prune(pool, timedelta(0), archive=tmp_path / "pruned")  # history pruned first: a row each
    age_ended(pool, SEVEN_YEARS + 1)
    waiting = start_waiting(service, 10)
    ended = registry_threads(pool, ENDED)
    assert len(ended) == 52
    before = {t: rows_of(pool, d, t) for t, d in ended.items()}
    systems = {t: rows_of(pool, d, t, sandbox=True) for t, d in ended.items()}
    untouched = {d: rows_of(pool, d, service.deal(d).thread_id) for d in waiting}
    real = before[service.deal("E-C").thread_id]
    assert {"dealflow_audit", "dealflow_effects", "dealflow_context", "dealflow_spans",
            "dealflow_waits", "dealflow_pruned_threads", "checkpoints"} <= set(real)
    assert systems[service.deal("E-C").thread_id]  # the systems hold records of it

    archive = tmp_path / "forgotten"
    code, out, err = _cli(service, capsys, "prune", "--forget-before", "7y",
                          "--archive", str(archive), "--json")
    assert code == 0, err
    run = json.loads(out)["forget"]
    assert {f["thread_id"]: f["deal_id"] for f in run["forgotten"]} == ended
    assert run["skipped"] == [] and run["finished"]
    for thread, deal_id in ended.items():
        assert rows_of(pool, deal_id, thread) == {}, deal_id  # nothing left but the tombstone
        assert rows_of(pool, deal_id, thread, sandbox=True) == systems[thread]
        done = next(f for f in run["forgotten"] if f["thread_id"] == thread)
        assert without_prune_leases(archived_rows(done["archive"]), before[thread]) == \
            before[thread]
        assert done["rows"] == {t: len(r) for t, r in archived_rows(done["archive"]).items()}
    assert {t: len(s) for t, s in tombstones(pool).items()} == dict.fromkeys(ended, 1)
    assert sum(run["deleted"].values()) == sum(t[0]["rows_deleted"]
                                               for t in tombstones(pool).values())
    assert sorted(p.name for p in archive.iterdir() if p.name.startswith(".")) == []

    assert {d: rows_of(pool, d, service.deal(d).thread_id) for d in waiting} == untouched
    assert sign_all(service, waiting) == {"completed"}  # untouched, and they resume
    _a_forgotten_deal_says_so(service, capsys, run)


def _a_forgotten_deal_says_so(service: DealService, capsys: Any, run: dict[str, Any]) -> None:
    """`status` and `history` of a forgotten deal: when, and where its archive is."""
    done = next(f for f in run["forgotten"] if f["deal_id"] == "E-C")
    for command, ref in (("status", "E-C"), ("history", "E-C"), ("status", done["thread_id"])):
        code, out, err = _cli(service, capsys, command, ref)
        assert code == 3 and out == "", err
        assert "E-C" in err and "forgotten on" in err and done["archive"] in err
        assert len(err.strip().splitlines()) == 1, err
    archive = read_forgotten(done["archive"])
    assert (archive.deal_id, archive.status) == ("E-C", "completed")
    blob = archive.tables["checkpoint_blobs"][0]["blob"]
    assert isinstance(blob, bytes) and blob  # LangGraph's bytes, as they were


def test_a_dry_run_names_each_deal_and_changes_nothing(
        service: DealService, tmp_path: Path, database_url: str, capsys: Any) -> None:
    pool = service.pool
    run_real_ended(service)
    ended = registry_threads(pool, ENDED)
    before = {t: rows_of(pool, d, t) for t, d in ended.items()}
    code, out, _ = _cli(service, capsys, "prune", "--forget-before", "0s", "--no-archive",
                        "--dry-run")
    assert code == 0 and out.startswith("would forget 4 deals")
    assert all(f"{d:<20} {t}" in out for t, d in ended.items())
    code, out, _ = _cli(service, capsys, "prune", "--forget-before", "0s", "--archive",
                        str(tmp_path), "--dry-run", "--json")
    run = json.loads(out)["forget"]
    assert code == 0 and run["dry_run"]
    assert {f["thread_id"]: f["deal_id"] for f in run["forgotten"]} == ended
    assert all(f["archive"] is None for f in run["forgotten"]) and not any(tmp_path.iterdir())
    assert {t: rows_of(pool, d, t) for t, d in ended.items()} == before
    assert tombstones(pool) == {}
    code, out, _ = _cli(service, capsys, "prune", "--forget-before", "7y", "--no-archive")
    assert code == 0 and out.startswith("nothing to forget")
    _bad_flags_are_one_line(database_url)
    assert {t: rows_of(pool, d, t) for t, d in ended.items()} == before


def _bad_flags_are_one_line(database_url: str) -> None:
    for flags, env, said in (
            (["--forget-before", "7y"], {}, "--forget-before needs --archive DIR"),
            (["--forget-before", "1d", "--ended-before", "90d", "--no-archive"], {},
             "must be at least --ended-before"),
            (["--forget-before", "7y", "--archive", "x", "--no-archive"], {},
             "--archive and --no-archive"),
            (["--forget-before", "7x"], {}, "duration must look like"),
            (["--dry-run"], {"DEALFLOW_RETENTION": "90d", "DEALFLOW_FORGET_AFTER": "30d",
                             "DEALFLOW_FORGET_ARCHIVE": "none"}, "must be at least"),
            (["--dry-run"], {"DEALFLOW_FORGET_AFTER": "7y"}, "needs DEALFLOW_FORGET_ARCHIVE")):
        done = run_cli(["prune", *flags], cli_env(database_url, **env))
        assert done.returncode == 2 and done.stdout == "", done
        assert said in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    by_setting = run_cli(["prune", "--dry-run", "--json"], cli_env(
        database_url, DEALFLOW_FORGET_AFTER="0s", DEALFLOW_FORGET_ARCHIVE="none"))
    assert len(json.loads(by_setting.stdout)["forget"]["forgotten"]) == 4, by_setting.stderr


def test_the_scheduled_run_forgets_when_set_and_never_below_the_retention(
        service: DealService, tmp_path: Path) -> None:
    run_real_ended(service)
    said = retention_run(service, 60)
    assert said.startswith("forget off") and tombstones(service.pool) == {}
    forgetting = service.settings.model_copy(update={
        "forget_after": timedelta(0), "forget_archive": str(tmp_path)})
    with DealService(forgetting) as other:
        said = retention_run(other, 60)
    assert said.startswith("4 deals forgotten"), said
    assert len(tombstones(service.pool)) == 4 and len(list(tmp_path.iterdir())) == 4
    with pytest.raises(DealConflict, match=r"^deal E-C \(thread .*\) was forgotten on .*; "
                       r"start it under another deal id$"):
        service.start(make_deal("E-C"))  # its thread and the systems' keys were its own
    longer = forgetting.model_copy(update={"retention": timedelta(days=1)})
    with DealService(longer) as other, pytest.raises(ConfigError, match="at least"):
        retention_run(other, 60)


def test_a_deal_a_process_holds_is_left_for_the_next_forget(service: DealService,
                                                           tmp_path: Path) -> None:
    from state.leases import Leases

    run_real_ended(service)
    held = service.deal("E-C").thread_id
    other = Leases(service.pool, seconds=30)
    try:
        with other.hold(held):
            run = forget(service.pool, timedelta(0), archive=tmp_path)
            assert [(s.deal_id, s.reason) for s in run.skipped] == [("E-C", "busy")]
            assert {f.deal_id for f in run.forgotten} == set(REAL_ENDED) - {"E-C"}
            assert rows_of(service.pool, "E-C", held)
    finally:
        other.close()
    assert [f.deal_id for f in forget(service.pool, timedelta(0),
                                      archive=tmp_path).forgotten] == ["E-C"]

"""A forget killed mid-run, and two forgets at once, in real processes.

`dealflow prune --forget-before` runs forked from a warm parent and is killed
with a real SIGKILL after its first batch committed: every deal is then either
forgotten, whole, with its tombstone and an archive holding every row it had,
or untouched; a rerun forgets the rest. Two forgets at once share the deals,
never one deal twice.
"""

from __future__ import annotations

import json
from pathlib import Path

from dealflow.api import DealService
from dealflow.prune import ENDED
from state.database import Pool, fetch_all
from tests.conftest import cli_env
from tests.integration.forget_deals import (
    archived_rows,
    rows_of,
    tombstones,
    without_prune_leases,
)
from tests.integration.prune_deals import (
    copy_ended,
    kill_after_first_batch,
    registry_held,
    registry_threads,
    run_real_ended,
)
from tests.integration.warm_cli import WarmProcess


def _tombstoned(pool: Pool) -> int:
    return int(fetch_all(pool, "SELECT count(*) AS n FROM dealflow_forgotten_deals")[0]["n"])


def test_a_forget_killed_after_its_first_batch_loses_nothing_and_a_rerun_finishes(
        service: DealService, database_url: str, tmp_path: Path) -> None:
    pool = service.pool
    run_real_ended(service)
    copy_ended(pool, 600)
    ended = registry_threads(pool, ENDED)
    before = {t: rows_of(pool, d, t) for t, d in ended.items()}
    archive = tmp_path / "archive"
    args = ["prune", "--forget-before", "0s", "--archive", str(archive), "--batch", "20"]
    kill_after_first_batch(args, database_url, lambda: _tombstoned(pool))
    first = tombstones(pool)
    assert 20 <= len(first) < 600, len(first)  # killed mid-run, not after it
    for thread, deal_id in ended.items():
        if thread in first:  # forgotten: every row it had is in its archive, none is left
            assert rows_of(pool, deal_id, thread) == {}
            archived = archived_rows(first[thread][0]["archive"])
            assert without_prune_leases(archived, before[thread]) == before[thread]
        else:  # untouched, whatever the kill interrupted
            assert rows_of(pool, deal_id, thread) == before[thread], deal_id

    rerun = WarmProcess([*args, "--json"], cli_env(database_url)).result(180)
    assert rerun.returncode == 0, rerun.stderr
    second = {f["thread_id"] for f in json.loads(rerun.stdout)["forget"]["forgotten"]}
    assert second.isdisjoint(first) and second | set(first) == set(ended)
    done = tombstones(pool)
    assert {t: len(stones) for t, stones in done.items()} == dict.fromkeys(ended, 1)
    for thread, deal_id in ended.items():
        assert rows_of(pool, deal_id, thread) == {}
        archived = archived_rows(done[thread][0]["archive"])
        assert without_prune_leases(archived, before[thread]) == before[thread]
    assert sorted(p.name for p in archive.iterdir() if p.name.startswith(".")) == []


def test_two_forgets_at_once_never_take_the_same_deal(service: DealService, database_url: str,
                                                     tmp_path: Path) -> None:
    pool = service.pool
    run_real_ended(service)
    copy_ended(pool, 600)
    ended = registry_threads(pool, ENDED)
    args = ["prune", "--forget-before", "0s", "--archive", str(tmp_path), "--batch", "10",
            "--json"]
    with registry_held(database_url) as until_queued:  # both begin together
        both = [WarmProcess(args, cli_env(database_url)) for _ in range(2)]
        until_queued(2)
    done = [process.result(180) for process in both]
    assert [d.returncode for d in done] == [0, 0], [d.stderr for d in done]
    taken = [{f["thread_id"] for f in json.loads(d.stdout)["forget"]["forgotten"]}
             for d in done]
    print(f"\ntwo forgets at once took {len(taken[0])} and {len(taken[1])} deals")
    assert all(taken) and taken[0].isdisjoint(taken[1])  # both at work, never on one deal
    assert taken[0] | taken[1] == set(ended)
    assert {t: len(s) for t, s in tombstones(pool).items()} == dict.fromkeys(ended, 1)
    assert registry_threads(pool, ENDED) == {}

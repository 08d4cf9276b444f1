"""A prune killed mid-run, two prunes at once, and the workers' scheduled prune.

`dealflow prune` runs in real processes (forked from a warm parent, killed with
a real SIGKILL): a kill after the first batch loses no row that is not in an
archive, and a rerun finishes; two prunes at once share the deals between them,
never one deal twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import timedelta
from pathlib import Path

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued

from dealflow.api import DealService
from dealflow.archive import read_archive
from dealflow.prune import ENDED
from dealflow.service.retention import PRUNE, PRUNE_EVERY
from dealflow.service.run import open_queue, worker_options
from state.config import Settings
from state.database import Pool, fetch_all
from tests.conftest import cli_env
from tests.integration.prune_deals import (
    copy_ended,
    kill_after_first_batch,
    registry_held,
    registry_threads,
    rows_per_thread,
    run_real_ended,
    start_waiting,
)
from tests.integration.warm_cli import WarmProcess


def _prunes(pool: Pool) -> dict[str, list[str | None]]:
    """Thread → the archive of each of its prunes, as `dealflow_pruned_threads` records them."""
    found: dict[str, list[str | None]] = {}
    for row in fetch_all(pool, "SELECT thread_id, archive FROM dealflow_pruned_threads"):
        found.setdefault(row["thread_id"], []).append(row["archive"])
    return found


def test_a_prune_killed_after_its_first_batch_loses_nothing_and_a_rerun_finishes(
        service: DealService, database_url: str, tmp_path: Path) -> None:
    pool = service.pool
    run_real_ended(service)
    copy_ended(pool, 1000)
    before = rows_per_thread(pool)
    archive = tmp_path / "archive"
    args = ["prune", "--ended-before", "0s", "--archive", str(archive), "--batch", "50"]
    kill_after_first_batch(args, database_url, lambda: _prunes(pool))
    first = _prunes(pool)
    assert 50 <= len(first) < 1000, len(first)  # killed mid-run, not after it
    after = rows_per_thread(pool)
    for thread, counts in before.items():
        if thread in first:  # pruned: its whole history is in its archive
            assert after[thread]["checkpoints"] == 1
            lines = read_archive(str(first[thread][0]))
            assert len(lines) == counts["checkpoints"]
        else:  # untouched, whatever the kill interrupted
            assert after[thread] == counts

    rerun = WarmProcess([*args, "--json"], cli_env(database_url)).result(120)
    assert rerun.returncode == 0, rerun.stderr
    second = {p["thread_id"] for p in json.loads(rerun.stdout)["pruned"]}
    assert second.isdisjoint(first) and second | set(first) == set(before)
    prunes = _prunes(pool)
    assert all(len(archives) == 1 for archives in prunes.values())
    assert {t: c["checkpoints"] for t, c in rows_per_thread(pool).items()} == dict.fromkeys(
        before, 1)
    for thread, (path, *_) in prunes.items():
        assert len(read_archive(str(path))) == before[thread]["checkpoints"]
    assert sorted(p.name for p in archive.iterdir() if p.name.startswith(".")) == []


def test_two_prunes_at_once_never_take_the_same_deal(service: DealService,
                                                     database_url: str) -> None:
    pool = service.pool
    run_real_ended(service)
    copy_ended(pool, 1000)
    args = ["prune", "--ended-before", "0s", "--batch", "20", "--json"]
    with registry_held(database_url) as until_queued:  # both begin together
        both = [WarmProcess(args, cli_env(database_url)) for _ in range(2)]
        until_queued(2)
    done = [process.result(180) for process in both]
    assert [d.returncode for d in done] == [0, 0], [d.stderr for d in done]
    taken = [{p["thread_id"] for p in json.loads(d.stdout)["pruned"]} for d in done]
    print(f"\ntwo prunes at once took {len(taken[0])} and {len(taken[1])} deals")
    assert all(taken) and taken[0].isdisjoint(taken[1])  # both at work, never on one deal
    assert taken[0] | taken[1] == set(registry_threads(pool, ENDED))
    assert all(len(archives) == 1 for archives in _prunes(pool).values())
    assert all(c["checkpoints"] == 1 for c in rows_per_thread(pool).values())


def test_the_workers_prune_on_schedule_when_retention_is_set(settings: Settings) -> None:
    with DealService(settings) as service:
        run_real_ended(service)
        start_waiting(service, 2)
        waiting = {t: rows_per_thread(service.pool)[t] for t in registry_threads(
            service.pool, ("waiting_signature",))}
    for retention, pruned in ((None, 0), (timedelta(0), 4)):  # off, then every ended deal
        with DealService(settings.model_copy(update={"retention": retention})) as service:
            queue = open_queue(service)
            periodic = queue.periodic_registry.periodic_tasks[(PRUNE, "prune")]
            assert periodic.cron == PRUNE_EVERY
            asyncio.run(_run_prune_jobs(service, queue))
            assert len(_prunes(service.pool)) == pruned
            assert {t: rows_per_thread(service.pool)[t] for t in waiting} == waiting


async def _run_prune_jobs(service: DealService, queue: procrastinate.App) -> None:
    """Queue the job as the periodic deferrer does, and work until the queue is empty.

    The worker's own periodic deferrer may queue the latest tick's job as well.
    """
    async with queue.open_async():
        with contextlib.suppress(AlreadyEnqueued):  # the deferrer's, queued already
            await queue.configure_task(PRUNE).defer_async(timestamp=int(time.time()))
        options = {**worker_options(service, 1), "wait": False, "listen_notify": False}
        await queue.run_worker_async(**options)
        jobs = await queue.job_manager.list_jobs_async(task=PRUNE)
    assert jobs and {job.status for job in jobs} == {"succeeded"}, jobs

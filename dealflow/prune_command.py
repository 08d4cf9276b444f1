"""`dealflow prune`: the command around `dealflow.prune`, and how a pruned history reads.

With `--forget-before` (or `DEALFLOW_FORGET_AFTER`, flags absent) it first forgets
the deals that ended that long ago (`dealflow.prune_forget`), then prunes. Progress
goes to stderr, and only when stderr is a terminal: stdout holds the summary (or,
with `--json`, one JSON object: the prune's, with the forget's under `forget`)
whatever happens.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TextIO

from dealflow.api import DealService
from dealflow.errors import DealflowError, InvalidInput
from dealflow.prune import REASONS, PruneRun, prune
from dealflow.prune_forget import ForgetRun, ForgetSettings, forget, forget_settings
from state.durations import format_duration


class ArchiveFailed(DealflowError):
    """The archive could not be written: the batch at hand deleted nothing."""

    exit_code = 1


class Interrupted(DealflowError):
    """Ctrl-C: the batches before are done, the one at hand was rolled back."""

    exit_code = 130


def prune_command(service: DealService, args: argparse.Namespace) -> tuple[Any, str]:
    """Run `dealflow prune` with the parsed `args`: its JSON and its text."""
    ended_before, forgetting = _tiers(service, args)
    progress = progress_line(sys.stderr) if sys.stderr.isatty() else None
    data: dict[str, Any] = {}
    texts = []
    try:
        if forgetting is not None:
            gone = forget(service.pool, forgetting.after or timedelta(0),
                          archive=forgetting.archive, dry_run=args.dry_run, batch=args.batch)
            data["forget"] = gone.to_json()
            texts.append(render_forget(gone))
        if ended_before is not None:
            run = prune(service.pool, ended_before, archive=args.archive,
                        dry_run=args.dry_run, batch=args.batch, on_batch=progress)
            data = {**run.to_json(), **data}
            texts.insert(0, render_run(run))
    except OSError as exc:
        raise ArchiveFailed(f"cannot write the archive in {args.archive}: "
                            f"{exc.strerror or exc}; the batch at hand was left as it was "
                            "(run the same command again)") from None
    except KeyboardInterrupt:
        raise Interrupted("interrupted: the batches done before are kept, the one at hand "
                          "was rolled back; run the same command again to finish") from None
    finally:
        if progress is not None:
            print(file=sys.stderr, flush=True)
    return data, "\n".join(texts)


def _tiers(service: DealService, args: argparse.Namespace
           ) -> tuple[timedelta | None, ForgetSettings | None]:
    """The prune's age and the forget's (with its archive) the flags or the settings ask for."""
    flags = args.ended_before is not None or args.forget_before is not None
    ended_before = args.ended_before if flags else service.settings.retention
    chosen = ForgetSettings(args.forget_before, None) if flags \
        else forget_settings(service.settings)
    if ended_before is None and chosen.after is None:
        raise InvalidInput("--ended-before DURATION is required (e.g. --ended-before 90d), "
                           "or --forget-before AGE, unless DEALFLOW_RETENTION is set")
    if chosen.after is None:
        return ended_before, None
    if ended_before is not None and chosen.after < ended_before:
        raise InvalidInput(f"--forget-before ({format_duration(chosen.after)}) must be at "
                           f"least --ended-before ({format_duration(ended_before)})")
    if args.archive is not None and args.no_archive:
        raise InvalidInput("--archive and --no-archive contradict each other: give one")
    if args.archive is not None or args.no_archive:
        return ended_before, ForgetSettings(chosen.after, args.archive)
    if not flags:  # DEALFLOW_FORGET_ARCHIVE, which forget_settings made sure is set
        return ended_before, chosen
    raise InvalidInput("--forget-before needs --archive DIR (every row of each deal is "
                       "written there first), or --no-archive to forget without one")


def render_forget(run: ForgetRun) -> str:
    """The summary of a forget, for a person."""
    if not run.forgotten and not run.skipped:
        return (f"nothing to forget: no deal ended at least "
                f"{format_duration(run.age)} ago")
    rows = sum(run.deleted().values())
    lines = [f"{'would forget' if run.dry_run else 'forgot'} {len(run.forgotten)} deals that "
             f"ended at least {format_duration(run.age)} ago: {rows} rows "
             f"{'to delete' if run.dry_run else 'deleted'} (the systems' records untouched)"]
    if run.archive is not None and not run.dry_run and run.forgotten:
        lines.append(f"archives (gzip JSON Lines, one per deal, every row) in {run.archive}")
    elif run.archive is None and run.forgotten:
        lines.append("not archived (--no-archive)")
    lines += [f"  {done.deal_id:<20} {done.thread_id}  {sum(done.rows.values())} rows"
              for done in run.forgotten[:20]]
    if len(run.forgotten) > 20:
        lines.append(f"  … and {len(run.forgotten) - 20} more (--json lists them all)")
    lines += [f"skipped {s.deal_id} ({s.thread_id}): {REASONS[s.reason]}" for s in run.skipped]
    return "\n".join(lines)


def progress_line(stream: TextIO) -> Callable[[PruneRun], None]:
    """A progress callback rewriting one line of `stream` after each batch."""
    def show(run: PruneRun) -> None:
        seconds = time.monotonic() - run.started
        done = len(run.pruned) + len(run.skipped)
        batches = f"{run.batches} batch{'es' if run.batches != 1 else ''}"
        stream.write(f"\r{'checked' if run.dry_run else 'pruned'} {len(run.pruned)} "
                     f"of {run.candidates} deals ({done} seen in {batches}, {seconds:.0f} s)")
        stream.flush()
    return show


def render_run(run: PruneRun) -> str:
    """The summary of a run, for a person."""
    deleted = run.deleted()
    verb = "would prune" if run.dry_run else "pruned"
    lines = [f"{verb} {len(run.pruned)} deals that ended at least "
             f"{format_duration(run.age)} ago: {deleted['checkpoints']} checkpoints, "
             f"{deleted['blobs']} blobs and {deleted['writes']} writes "
             f"{'to delete' if run.dry_run else 'deleted'}; the latest checkpoint of each "
             "is kept"]
    if run.archive is not None and not run.dry_run and run.pruned:
        lines.append(f"archives (gzip JSON Lines, one per deal) in {run.archive}")
    for pruned in run.pruned[:20]:
        lines.append(f"  {pruned.deal_id:<20} {pruned.thread_id}  "
                     f"{pruned.checkpoints} checkpoints")
    if len(run.pruned) > 20:
        lines.append(f"  … and {len(run.pruned) - 20} more (--json lists them all)")
    for skipped in run.skipped:
        lines.append(f"skipped {skipped.deal_id} ({skipped.thread_id}): "
                     f"{REASONS[skipped.reason]}")
    if not run.pruned and not run.skipped:
        lines = [f"nothing to prune: no deal that ended at least "
                 f"{format_duration(run.age)} ago has history left"]
    return "\n".join(lines)


def render_pruned(prunes: list[dict[str, Any]]) -> str:
    """What `dealflow history` adds for a pruned thread: when, what went, where it is kept."""
    lines = []
    for done in prunes:
        where = f"archive: {done['archive']}" if done["archive"] else "not archived"
        lines.append(f"pruned {done['pruned_at']}: {done['checkpoints']} earlier checkpoints "
                     f"deleted, {done['kept_checkpoint_id']} kept ({where})")
    return "\n".join(lines)

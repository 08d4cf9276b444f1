"""`dealflow prune`: the command around `dealflow.prune`, and how a pruned history reads.

Progress goes to stderr, and only when stderr is a terminal: stdout holds the
summary (or, with `--json`, one JSON object) whatever happens.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from dealflow.api import DealService
from dealflow.errors import DealflowError, InvalidInput
from dealflow.prune import REASONS, PruneRun, prune
from state.durations import format_duration


class ArchiveFailed(DealflowError):
    """The archive could not be written: the batch at hand deleted nothing."""

    exit_code = 1


class Interrupted(DealflowError):
    """Ctrl-C: the batches before are done, the one at hand was rolled back."""

    exit_code = 130


def prune_command(service: DealService, args: argparse.Namespace) -> tuple[Any, str]:
    """Run `dealflow prune` with the parsed `args`: its JSON and its text."""
    ended_before = (service.settings.retention if args.ended_before is None
                    else args.ended_before)  # 0s is a duration, not a missing one
    if ended_before is None:
        raise InvalidInput("--ended-before DURATION is required (e.g. --ended-before 90d), "
                           "unless DEALFLOW_RETENTION is set")
    progress = progress_line(sys.stderr) if sys.stderr.isatty() else None
    try:
        run = prune(service.pool, ended_before, archive=args.archive, dry_run=args.dry_run,
                    batch=args.batch, on_batch=progress)
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
    return run.to_json(), render_run(run)


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
             f"{format_duration(run.ended_before)} ago: {deleted['checkpoints']} checkpoints, "
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
                 f"{format_duration(run.ended_before)} ago has history left"]
    return "\n".join(lines)


def render_pruned(prunes: list[dict[str, Any]]) -> str:
    """What `dealflow history` adds for a pruned thread: when, what went, where it is kept."""
    lines = []
    for done in prunes:
        where = f"archive: {done['archive']}" if done["archive"] else "not archived"
        lines.append(f"pruned {done['pruned_at']}: {done['checkpoints']} earlier checkpoints "
                     f"deleted, {done['kept_checkpoint_id']} kept ({where})")
    return "\n".join(lines)

"""Text rendering of `dealflow trace` (one deal's waterfall) and `dealflow stats`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from graph.nodes import ERROR_HANDLER_PREFIX
from graph.workflow import Workflow
from state.deadlines import Deadline
from state.durations import format_duration
from state.spans import Span

WIDTH = 40


@dataclass(frozen=True)
class Timer:
    """A deadline set by a wait, with the node that waited and when it started waiting."""

    deadline: Deadline
    node: str
    opened_at: datetime

    def describe(self) -> str:
        """`review.remind due after 1.0s: fired at 12:00:03`."""
        after = format_duration(timedelta(seconds=round(
            (self.deadline.due_at - self.opened_at).total_seconds())))
        settled = self.deadline.settled_at
        how = {"fired": f"fired at {settled:%H:%M:%S}" if settled else "fired",
               "cancelled": f"cancelled ({self.deadline.note})",
               "scheduled": f"due at {self.deadline.due_at:%Y-%m-%d %H:%M:%S %Z}"}
        return (f"{self.deadline.name} after {after}: "
                f"{how.get(self.deadline.status, self.deadline.status)}")


def timers_by_span(spans: Sequence[Span], timers: Sequence[Timer]) -> dict[int, list[Timer]]:
    """Each timer under the waiting span of its wait (the last one of its node before it)."""
    found: dict[int, list[Timer]] = {}
    for timer in timers:
        candidates = [i for i, s in enumerate(spans) if s.status == "waiting"
                      and s.node == timer.node and s.started_at <= timer.opened_at]
        if candidates:
            found.setdefault(candidates[-1], []).append(timer)
    return found


def waits(spans: Sequence[Span]) -> dict[int, float]:
    """For each waiting span (by index): seconds until its node ran again (the resume)."""
    found = {}
    for index, span in enumerate(spans):
        if span.status != "waiting":
            continue
        end = span.started_at + timedelta(milliseconds=span.duration_ms)
        later = [s for s in spans[index + 1:] if s.node == span.node]
        if later:
            found[index] = max(0.0, (later[0].started_at - end).total_seconds())
    return found


def render_trace(deal_id: str, thread_id: str, spans: Sequence[Span], workflow: Workflow,
                 timers: Sequence[Timer] = ()) -> str:
    """A waterfall: one row per node attempt, waits (and their timers) shown apart."""
    if not spans:
        return f"no spans for thread {thread_id}"
    waited = waits(spans)
    timed = timers_by_span(spans, timers)
    t0 = spans[0].started_at
    shift, offsets = 0.0, []
    for index, span in enumerate(spans):
        offsets.append((span.started_at - t0).total_seconds() - shift)
        shift += waited.get(index, 0.0)
    total = max(o + s.duration_ms / 1000 for o, s in zip(offsets, spans, strict=True)) or 1e-9
    failures = sum(s.status == "error" for s in spans)
    lines = [f"trace of deal {deal_id} (thread {thread_id}): {len(spans)} spans, "
             f"{total:.3f}s of work, {len(waited)} waits, {failures} failed attempts",
             f"{'OFFSET':>10} {'TOOK':>8}  {'STATUS':<8} {'AGENT':<11} {'NODE':<34} TIMELINE"]
    for index, (offset, span) in enumerate(zip(offsets, spans, strict=True)):
        start = int(offset / total * WIDTH)
        length = max(1, round(span.duration_ms / 1000 / total * WIDTH))
        bar = " " * start + ("▒" if span.status == "waiting" else "█") * length
        node = span.node.replace(ERROR_HANDLER_PREFIX, "escalate ") + (
            f" (attempt {span.attempt})" if span.attempt > 1 else "")
        took = f"{span.duration_ms:.0f}ms" if span.duration_ms < 10_000 else \
            f"{span.duration_ms / 1000:.1f}s"
        lines.append(f"{f'+{offset:.3f}s':>10} {took:>8}  {span.status:<8} {span.agent:<11} "
                     f"{node[:34]:<34} |{bar:<{WIDTH}}|")
        if span.error:
            lines.append(f"{'':>21}✗ {span.error[:100]}")
        if index in waited:
            lines.append(f"{'':>21}⏸ waited {waited[index]:.1f}s for the "
                         f"{workflow.wait_name(span.node)}")
        lines.extend(f"{'':>21}⏱ {timer.describe()}" for timer in timed.get(index, []))
    return "\n".join(lines)


def trace_json(deal_id: str, thread_id: str, spans: Sequence[Span],
               timers: Sequence[Timer] = ()) -> dict[str, Any]:
    """The spans of a thread as JSON data, each wait (and its timers) attached to its span."""
    waited = waits(spans)
    timed = timers_by_span(spans, timers)
    return {"deal_id": deal_id, "thread_id": thread_id,
            "spans": [{**asdict(s), "waited_seconds": waited.get(i),
                       "timers": [asdict(t.deadline) for t in timed.get(i, [])]}
                      for i, s in enumerate(spans)]}


def render_stats(statuses: dict[str, int], steps: Sequence[dict[str, Any]],
                 systems: Sequence[dict[str, Any]], since: str | None) -> str:
    """Deals by status, per-step durations and failures, per-system failures."""
    scope = f"in the last {since}" if since else "all time"
    lines = [f"deals by status ({scope}): " + (", ".join(f"{k} {v}" for k, v in
                                                           statuses.items()) or "none"), "",
             f"{'STEP':<34} {'AGENT':<11} {'RUNS':>5} {'MEDIAN':>9} {'P95':>9} "
             f"{'FAILED':>6} {'RETRIES':>7}"]
    for row in steps:
        if row["node"].startswith("__"):
            continue
        median = f"{row['median_ms']:.0f}ms" if row["median_ms"] is not None else "-"
        p95 = f"{row['p95_ms']:.0f}ms" if row["p95_ms"] is not None else "-"
        lines.append(f"{row['node']:<34} {row['agent']:<11} {row['attempts']:>5} {median:>9} "
                     f"{p95:>9} {row['failures']:>6} {row['retries']:>7}")
    lines += ["", f"{'SYSTEM':<10} {'CALLS':>6} {'FAILED':>6} {'RETRIES':>7}"]
    lines += [f"{r['system']:<10} {r['attempts']:>6} {r['failures']:>6} {r['retries']:>7}"
              for r in systems]
    return "\n".join(lines)

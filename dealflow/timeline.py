"""Text rendering of `dealflow trace` (one deal's waterfall) and `dealflow stats`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from graph.nodes import ERROR_HANDLER_PREFIX
from graph.workflow import Workflow
from state.spans import Span

WIDTH = 40


MAX_DURATION = timedelta(days=36500)  # a hundred years: every deal there is


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `2h`, `7d` → timedelta (ValueError otherwise)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text)
    if not match:
        raise ValueError(f"duration must look like 90s, 30m, 2h or 7d, got {text!r:.40}")
    seconds = float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"duration must be at most {MAX_DURATION.days}d, got {text!r:.40}")
    return timedelta(seconds=seconds)


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


def render_trace(deal_id: str, thread_id: str, spans: Sequence[Span], workflow: Workflow) -> str:
    """A waterfall: one row per node attempt, waits shown apart and left out of the scale."""
    if not spans:
        return f"no spans for thread {thread_id}"
    waited = waits(spans)
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
            kind = (workflow.waiting_status(span.node) or "event").removeprefix("waiting_")
            lines.append(f"{'':>21}⏸ waited {waited[index]:.1f}s for the {kind}")
    return "\n".join(lines)


def trace_json(deal_id: str, thread_id: str, spans: Sequence[Span]) -> dict[str, Any]:
    """The spans of a thread as JSON data, each wait attached to its span."""
    waited = waits(spans)
    return {"deal_id": deal_id, "thread_id": thread_id,
            "spans": [{**asdict(s), "waited_seconds": waited.get(i)}
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

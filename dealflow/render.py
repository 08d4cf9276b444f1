"""Human-readable rendering for the CLI: progress lines, reports, tables.

Importing it imports no graph: `dealflow threads` renders its table without
LangGraph; the renderers of steps and reports import `graph.nodes` when called.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dealflow.reports import DealReport
    from graph.workflow import StepSpec, Workflow
    from state.audit import AuditEntry
    from state.registry import DealRow


def who(node: str, workflow: Workflow) -> str:
    """Who acts at a node, as the CLI names it (`lead agent`, `reviewer`, `signer`)."""
    from graph.nodes import handled_step

    step = handled_step(node) or node
    agent = workflow.agent_of(step)
    spec = workflow.declared_step(step)
    return f"{agent} agent" if spec is not None and spec.kind == "agent" else agent


def describe_step(node: str, update: dict[str, Any], workflow: Workflow) -> str | None:
    """One progress line for a finished node, or None for routing-only updates."""
    from graph.nodes import HUMAN_REVIEW, SUPERVISOR, handled_step

    step = handled_step(node)
    if step is not None:
        failure = next(iter((update.get("failures") or {}).values()), None)
        error = failure.error if failure is not None else "unknown error"
        return f"  ✗ {who(step, workflow):<15} {step:<19} failed after retries: {error}"
    if node == SUPERVISOR:
        outcome = update.get("outcome")
        return f"  ■ {'supervisor':<15} {'end':<19} outcome: {outcome}" if outcome else None
    if node == HUMAN_REVIEW:
        reviews = update.get("reviews") or []
        detail = f"{reviews[0].decision} by {reviews[0].reviewer}" if reviews else ""
    else:
        spec = workflow.step(node)
        output = update.get(spec.output)
        detail = spec.describe(output) if output is not None else ""
    return f"  ✓ {who(node, workflow):<15} {node:<19} {detail}".rstrip()


def progress_printer(workflow: Workflow,
                     write: Callable[[str], None] | None = None
                     ) -> Callable[[str, dict[str, Any]], None]:
    """A progress callback: one line per finished node of `workflow` (to stdout by default)."""
    def show(node: str, update: dict[str, Any]) -> None:
        line = describe_step(node, update, workflow)
        if line:
            if write is None:
                print(line, flush=True)
            else:
                write(line)
    return show


def next_steps(report: DealReport, workflow: Workflow) -> list[str]:
    """The commands that continue a waiting thread (an event step's: its declared events)."""
    thread = report.deal_id  # every command takes the deal id as well as the thread id
    spec = waiting_step(report, workflow)
    if spec is not None:
        return [f"dealflow event {thread} {event}" for event in spec.events]
    if report.status == "waiting_review" and report.pending:
        action = report.pending["action_requests"][0]["name"]
        first = "retry" if action == "retry_failed_step" else "approve"
        return [f"dealflow resume {thread} --decision {first}",
                f"dealflow resume {thread} --decision reject --comment 'why'"]
    return []


def waiting_step(report: DealReport, workflow: Workflow) -> StepSpec | None:
    """The event step the thread waits at, if it waits at one."""
    node = (report.pending or {}).get("node")
    spec = workflow.declared_step(node) if node else None  # under an old name too
    return spec if spec is not None and spec.kind == "event" else None


def waiting_line(report: DealReport, workflow: Workflow) -> str | None:
    """`waiting for signature.completed or signature.declined on envelope ENV-000001`."""
    spec = waiting_step(report, workflow)
    if spec is None:
        return None
    handle = spec.handle_of(report.context)
    on = f" on {spec.handle_fact} {handle}" if handle else ""
    return f"waiting for {' or '.join(spec.events) or spec.description}{on}"


def render_report(report: DealReport, workflow: Workflow) -> str:
    """A deal report as a few lines of text."""
    return report_text(report, waiting_line(report, workflow), next_steps(report, workflow))


def report_text(report: DealReport, waiting: str | None, commands: list[str]) -> str:
    """A deal report as text, given what the workflow says it waits for and the next commands.

    `dealflow.recorded_status` prints a recorded report with the lines recorded with it.
    """
    lines = [
        f"deal {report.deal_id} · thread {report.thread_id} · status {report.status}",
        "completed: " + (" → ".join(report.completed_steps) or "nothing yet"),
    ]
    if waiting is not None:
        lines.append(waiting)
    elif report.pending and report.pending.get("action_requests"):
        lines.append("review: " + report.pending["action_requests"][0]["description"])
    for deadline in report.deadlines:
        lines.append(f"deadline {deadline['name']} at {deadline['due_at']}: {deadline['then']}")
    if report.supervisor != "rules" or report.usage.get("calls"):
        usage = report.usage
        lines.append(f"supervisor {report.supervisor}: {usage.get('calls', 0)} model calls, "
                     f"{usage.get('prompt_tokens', 0)}+{usage.get('completion_tokens', 0)} "
                     f"tokens, ~{usage.get('cost_usd', 0)} USD")
    if report.summary:
        lines.append(f"summary: {report.summary}")
    if report.note:
        lines.append(f"note: {report.note}")
    if commands:
        lines.append("continue with:")
        lines.extend(f"  {command}" for command in commands)
    return "\n".join(lines)


_CONTROL = {i: f"\\x{i:02x}" for i in (*range(32), *range(0x7F, 0xA0))}
_CONTROL_IN_TEXT = {i: esc for i, esc in _CONTROL.items() if chr(i) not in "\n"}


def one_line(value: Any) -> str:
    """`value` as one printable line: control characters (newlines too) shown escaped."""
    return str(value).translate(_CONTROL)


def printable(text: str) -> str:
    """Text for a terminal: lines kept, every other control character escaped."""
    return text.translate(_CONTROL_IN_TEXT)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned text table; a cell never carries a control character."""
    cells = [[one_line(h) for h in headers]] + [[one_line(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def thread_status(row: DealRow, active: bool) -> str:
    """A thread's listed status: `running` ones say whether a process still drives them."""
    if row.status != "running":
        return row.status
    return "running" if active else "running (process gone: dealflow recover)"


def render_threads(rows: Sequence[tuple[DealRow, bool]]) -> str:
    """The `threads` listing."""
    if not rows:
        return "no threads"
    return render_table(
        ("THREAD", "DEAL", "CLIENT", "VALUE", "STATUS", "UPDATED"),
        [(r.thread_id, r.deal_id, r.client, f"{r.value:,.2f} {r.currency}",
          thread_status(r, active), r.updated_at.strftime("%Y-%m-%d %H:%M:%S"))
         for r, active in rows],
    )


def threads_text(next_cursor: str | None, rows: Sequence[tuple[DealRow, bool]],
                 status: str | None, overdue: bool) -> str:
    """The `threads` listing, and the command that shows the next page if there is one."""
    text = render_threads(rows)
    if next_cursor:
        text += (f"\n… more threads (this page shows {len(rows)}): dealflow threads "
                 f"{'--status ' + status + ' ' if status else ''}"
                 f"{'--overdue ' if overdue else ''}--cursor {next_cursor}")
    return text


def render_audit(entries: Sequence[AuditEntry]) -> str:
    """The `audit` listing: who did what, in order."""
    if not entries:
        return "no audit entries"
    return render_table(
        ("#", "TIME", "AGENT", "STEP", "ACTION", "WHAT"),
        [(e.id, e.at.strftime("%H:%M:%S.%f")[:-3], e.agent, e.step or "-", e.action,
          _audit_what(e)) for e in entries],
    )


def _audit_what(entry: AuditEntry) -> str:
    detail = entry.detail
    if entry.action == "context.write":
        return f"{entry.key} v{detail.get('version')} = {json.dumps(detail.get('value'))[:60]}"
    if entry.action.startswith("effect."):
        return str(detail.get("effect"))
    if entry.action == "review.decision":
        why = f" ({entry.reason})" if entry.reason else ""
        return f"{detail.get('decision')} by {entry.actor}{why}"
    if entry.action == "wait.opened":
        due = ", ".join(f"{d['name']} {str(d['due_at'])[11:19]}"
                        for d in detail.get("deadlines", []))
        return f"{detail.get('wait')} wait; deadlines: {due or 'none'}"
    if entry.action in ("wait.answered", "wait.refused"):
        return f"{entry.actor}: {json.dumps(detail.get('resolution') or detail.get('refused'))}"
    if entry.action == "deadline.fired":
        told = f", told {detail['notified']}" if detail.get("notified") else ""
        return f"{detail.get('deadline')} (due {str(detail.get('due_at'))[11:19]}){told}"
    if entry.action == "deadline.cancelled":
        return f"{', '.join(detail.get('deadlines', []))}: {entry.reason or ''}"[:80]
    return (entry.reason or "")[:80]


def render_history(entries: Sequence[dict[str, Any]]) -> str:
    """The `history` listing."""
    return render_table(
        ("STEP", "SOURCE", "STATUS", "NEXT", "COMPLETED", "CHECKPOINT"),
        [(e["step"], e["source"], e["status"], ",".join(e["next"]) or "-",
          len(e["completed_steps"]), e["checkpoint_id"]) for e in entries],
    )


def render_records(deal_id: str, records: dict[str, list[dict[str, Any]]],
                   record_ids: dict[str, str]) -> str:
    """The `records` listing: one line per system; records of a left branch are marked."""
    lines = [f"systems of record for deal {deal_id}:"]
    for label, rows in records.items():
        names = ", ".join(
            str(row.get(record_ids.get(label, "id"))) + _branch_mark(row) for row in rows) or "-"
        lines.append(f"  {label:<13} {len(rows)}  {names}")
    if any(row.get("branch") == "superseded" for rows in records.values() for row in rows):
        lines.append("  (superseded: made on a branch of the thread that a fork replaced)")
    return "\n".join(lines)


def _branch_mark(row: dict[str, Any]) -> str:
    marks = []
    if row.get("branch") == "superseded":
        marks.append("superseded")
    if row.get("status") == "voided":
        marks.append("voided")
    return f" ({', '.join(marks)})" if marks else ""

"""Human-readable rendering for the CLI: progress lines, reports, tables."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from dealflow.reports import DealReport
from graph.workflow import STEPS
from state.audit import AuditEntry
from state.registry import DealRow

AGENT_OF = {spec.name: f"{spec.agent} agent" for spec in STEPS}
AGENT_OF["human_review"] = "reviewer"
AGENT_OF["await_signature"] = "signer"
ERROR_HANDLER_PREFIX = "__error_handler__"


def _fact(update: dict[str, Any], key: str) -> Any:
    value = update.get(key)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


def describe_step(node: str, update: dict[str, Any]) -> str | None:
    """One progress line for a finished node, or None for routing-only updates."""
    if node.startswith(ERROR_HANDLER_PREFIX):
        step = node.removeprefix(ERROR_HANDLER_PREFIX)
        failure = next(iter((update.get("failures") or {}).values()), None)
        error = failure.error if failure is not None else "unknown error"
        return f"  ✗ {AGENT_OF.get(step, 'agent'):<15} {step:<19} failed after retries: {error}"
    if node == "supervisor":
        outcome = update.get("outcome")
        return f"  ■ {'supervisor':<15} {'end':<19} outcome: {outcome}" if outcome else None
    detail = _DETAILS.get(node, lambda u: "")(update)
    return f"  ✓ {AGENT_OF.get(node, node):<15} {node:<19} {detail}".rstrip()


_DETAILS = {
    "qualify_lead": lambda u: (
        f"score {_fact(u, 'qualification')['score']}/10, "
        + ("qualified" if _fact(u, "qualification")["qualified"] else "not qualified")
    ),
    "create_project": lambda u: (
        f"{_fact(u, 'project')['project_id']} with {len(_fact(u, 'project')['tasks'])} tasks"
    ),
    "generate_contract": lambda u: (
        f"{_fact(u, 'contract')['contract_id']} sha256 {_fact(u, 'contract')['sha256'][:12]}…"
    ),
    "send_for_signature": lambda u: (
        f"envelope {_fact(u, 'envelope')['envelope_id']} to {_fact(u, 'envelope')['signer_email']}"
    ),
    "await_signature": lambda u: f"{_fact(u, 'signature')['event']}",
    "generate_invoice": lambda u: (
        f"invoice {_fact(u, 'invoice')['number']} total {_fact(u, 'invoice')['total']} "
        f"{_fact(u, 'invoice')['currency']} due {_fact(u, 'invoice')['due_on']}"
    ),
    "human_review": lambda u: (
        f"{u['reviews'][0].decision} by {u['reviews'][0].reviewer}" if u.get("reviews") else ""
    ),
}


def next_steps(report: DealReport) -> list[str]:
    """The commands that continue a waiting thread."""
    thread = report.thread_id
    if report.status == "waiting_signature":
        return [f"dealflow event {thread} signature.completed",
                f"dealflow event {thread} signature.declined"]
    if report.status == "waiting_review" and report.pending:
        action = report.pending["action_requests"][0]["name"]
        first = "retry" if action == "retry_failed_step" else "approve"
        return [f"dealflow resume {thread} --decision {first}",
                f"dealflow resume {thread} --decision reject --comment 'why'"]
    return []


def render_report(report: DealReport) -> str:
    """A deal report as a few lines of text."""
    lines = [
        f"deal {report.deal_id} · thread {report.thread_id} · status {report.status}",
        "completed: " + (" → ".join(report.completed_steps) or "nothing yet"),
    ]
    if report.pending:
        if report.pending.get("action_requests"):
            lines.append("review: " + report.pending["action_requests"][0]["description"])
        else:
            lines.append(
                f"waiting for {' or '.join(report.pending.get('expected_events', []))} "
                f"on envelope {report.pending.get('envelope_id')}"
            )
    if report.supervisor != "rules" or report.usage.get("calls"):
        usage = report.usage
        lines.append(f"supervisor {report.supervisor}: {usage.get('calls', 0)} model calls, "
                     f"{usage.get('prompt_tokens', 0)}+{usage.get('completion_tokens', 0)} "
                     f"tokens, ~{usage.get('cost_usd', 0)} USD")
    if report.summary:
        lines.append(f"summary: {report.summary}")
    commands = next_steps(report)
    if commands:
        lines.append("continue with:")
        lines.extend(f"  {command}" for command in commands)
    return "\n".join(lines)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned text table."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
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
    return (entry.reason or "")[:80]


def render_history(entries: Sequence[dict[str, Any]]) -> str:
    """The `history` listing."""
    return render_table(
        ("STEP", "SOURCE", "STATUS", "NEXT", "COMPLETED", "CHECKPOINT"),
        [(e["step"], e["source"], e["status"], ",".join(e["next"]) or "-",
          len(e["completed_steps"]), e["checkpoint_id"]) for e in entries],
    )


def render_records(deal_id: str, records: dict[str, list[dict[str, Any]]]) -> str:
    """The `records` listing: one line per record per system."""
    ids = {"crm": "id", "projects": "project_id", "contracts": "contract_id",
           "envelopes": "envelope_id", "invoices": "number"}
    lines = [f"systems of record for deal {deal_id}:"]
    for system, rows in records.items():
        names = ", ".join(str(row[ids[system]]) for row in rows) or "-"
        lines.append(f"  {system:<10} {len(rows)}  {names}")
    return "\n".join(lines)

"""A wait declared in this file alone is shown, driven and timed out as its declaration says.

After the signature, the client's procurement must issue a purchase order
before the invoice goes out: the `await_purchase_order` event step (a node
and one `StepSpec`) with its own `WaitPolicy` (a reminder and an expiry, each
with its notice text and its call on a new sandbox system, `procurement`). No
other module is edited, yet the CLI's status and next-step hints, `dealflow
event`, MCP's deal context, the inbox's deal page and the deadlines all know
it: what they show and do comes from the declaration.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest
from jinja2 import Environment, FileSystemLoader
from pydantic import BaseModel, ConfigDict

from agents.step_run import StepRun
from agents.systems.sandbox import sandbox_systems
from agents.systems.sandbox_base import SandboxSystem
from dealflow.api import DealService
from dealflow.cli import main
from dealflow.cli_parser import build_parser
from dealflow.mcp_tools import DealTools
from dealflow.service.inbox import HERE
from dealflow.service.inbox_data import pending_reviews, review_page
from graph.wait_policy import DeadlineSpec, SystemCall, WaitPolicy
from graph.waiting import is_expiry
from graph.workflow import DEFAULT_WORKFLOW, StepSpec
from state.config import Settings
from state.database import open_pool
from state.deal_state import DealState
from state.models import Outcome
from tests.helpers import make_deal

PO_EVENTS = ("purchase_order.received", "purchase_order.cancelled")
PO_OUTCOMES: dict[str, Outcome] = {"purchase_order.cancelled": "declined",
                                   "purchase_order.expired": "expired"}


class PurchaseOrder(BaseModel):
    """The step's output: how the purchase-order wait ended."""

    model_config = ConfigDict(frozen=True)
    event: Literal["purchase_order.received", "purchase_order.cancelled",
                   "purchase_order.expired"]
    received_at: datetime


class ProcurementNote(BaseModel):
    """What the procurement system did for a contract (a reminder, a withdrawal)."""

    model_config = ConfigDict(frozen=True)
    note_id: str
    contract_id: str
    action: str
    reason: str | None = None


class SandboxProcurement(SandboxSystem):
    """The client's procurement portal, kept in a table this test creates."""

    name, records_label, record_id = "procurement", "procurement_notes", "note_id"

    def remind_buyer(self, contract_id: str, *, key: str) -> ProcurementNote:
        """Remind the buyer that a purchase order is due for the contract (once per key)."""
        return self._note(contract_id, "remind", None, key)

    def withdraw_request(self, contract_id: str, *, reason: str, key: str) -> ProcurementNote:
        """Withdraw the purchase-order request for the contract (once per key)."""
        return self._note(contract_id, "withdraw", reason, key)

    def _note(self, contract_id: str, action: str, reason: str | None, key: str
              ) -> ProcurementNote:
        self.before_call()
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("INSERT INTO test_procurement_notes (note_id, contract_id,"
                         " idempotency_key, action, reason) VALUES ('PN-' ||"
                         " nextval('test_procurement_seq'), %s, %s, %s, %s)"
                         " ON CONFLICT (idempotency_key) DO NOTHING",
                         (contract_id, key, action, reason))
            self.accept(conn, key, {"contract_id": contract_id, "action": action,
                                    "reason": reason})
        found = self.lookup(key)
        assert found is not None
        return found

    def lookup(self, key: str) -> ProcurementNote | None:
        """The note made with `key`."""
        row = self._by_key("test_procurement_notes", key)
        return None if row is None else ProcurementNote.model_validate(row)

    def records(self, deal_id: str) -> list[dict[str, Any]]:
        """Notes on the deal's contracts."""
        return self._rows("SELECT n.* FROM test_procurement_notes n JOIN sandbox_contracts c"
                          " ON c.contract_id = n.contract_id WHERE c.deal_id = %s"
                          " ORDER BY n.note_id", deal_id)


def await_purchase_order(state: DealState, run: StepRun) -> PurchaseOrder:
    """The node: wait for the purchase order (or its expiry), then record how it ended."""
    assert run.wait is not None
    contract = state.contract.contract_id if state.contract else None

    def parse(value: Any) -> dict[str, Any]:
        event = value.get("event") if isinstance(value, dict) else value
        if event not in PO_EVENTS:
            raise ValueError(f"unknown purchase order event {event!r:.80}")
        return {"event": event}

    resolution = run.wait.ask({"type": "purchase_order", "contract_id": contract,
                               "expected_events": list(PO_EVENTS)}, parse, actor="procurement")
    event = "purchase_order.expired" if is_expiry(resolution) else resolution["event"]
    run.write("purchase_order", {"event": event})
    return PurchaseOrder(event=event, received_at=datetime.now(UTC))


PO_STEP = StepSpec(
    "await_purchase_order", "buyer", await_purchase_order, "purchase_order", PurchaseOrder,
    "Wait for the client's purchase order before invoicing.", requires=("signature_completed",),
    summary=lambda po: po.event, kind="event", events=PO_EVENTS, handle="contract.contract_id",
    outcome=lambda po: PO_OUTCOMES.get(po.event),
    show=lambda po: po["event"] if po else "no purchase order yet")
PO_WAIT = WaitPolicy("purchase_order", "await_purchase_order", (
    DeadlineSpec("remind", "procurement reminds the buyer of the purchase order",
                 notice="PO chase: {client} owes a purchase order for {handle} "
                        "(waiting since {since}).",
                 call=SystemCall("remind_buyer", ProcurementNote, per_deadline=True),
                 after=timedelta(days=2)),
    DeadlineSpec("expire", "withdraw the purchase-order request and end the deal as expired",
                 notice="No purchase order from {client} for {handle}; the deal {deal_id} "
                        "expired.",
                 call=SystemCall("withdraw_request", ProcurementNote,
                                 args=(("reason", "expired"),)),
                 after=timedelta(days=10)),
), system="procurement", notify="accounts")
WORKFLOW = DEFAULT_WORKFLOW.with_step(PO_STEP, after="await_signature",
                                      required_by=("generate_invoice",), wait=PO_WAIT)
TABLES = ("CREATE SEQUENCE IF NOT EXISTS test_procurement_seq",
          "CREATE TABLE IF NOT EXISTS test_procurement_notes (note_id text PRIMARY KEY,"
          " contract_id text NOT NULL, idempotency_key text NOT NULL UNIQUE,"
          " action text NOT NULL, reason text)")


@pytest.fixture
def po_service(settings: Settings) -> Iterator[DealService]:
    """A `DealService` of the workflow with the purchase-order wait, on its new system."""
    pool = open_pool(settings.database_url or "")
    with pool.connection() as conn:
        for sql in TABLES:
            conn.execute(sql)
    systems = sandbox_systems(pool).with_system(SandboxProcurement(pool))
    try:
        with DealService(settings, systems=systems, workflow=WORKFLOW) as service:
            yield service
    finally:
        pool.close()


def _cli(service: DealService, capsys: pytest.CaptureFixture[str], *args: str
         ) -> tuple[int, str, str]:
    try:
        code = main(list(args), service=service)
    except SystemExit as exc:  # argparse refused the command line
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _signed(service: DealService, deal_id: str) -> str:
    """Start a deal and sign it: it then waits for its purchase order. Its contract id."""
    service.start(make_deal(deal_id))
    report = service.event(deal_id, "signature.completed")
    assert (report.status, report.pending and report.pending["node"]) == (
        "waiting_event", "await_purchase_order")
    return str(report.context["contract"]["contract_id"])


def test_the_cli_mcp_and_inbox_show_the_declared_wait(
        po_service: DealService, capsys: pytest.CaptureFixture[str]) -> None:
    contract = _signed(po_service, "PO-1")
    code, out, _ = _cli(po_service, capsys, "status", "PO-1")
    assert code == 0 and "status waiting_event" in out
    assert (f"waiting for purchase_order.received or purchase_order.cancelled on contract "
            f"{contract}") in out
    assert "continue with:\n  dealflow event PO-1 purchase_order.received\n" \
           "  dealflow event PO-1 purchase_order.cancelled" in out
    assert "deadline purchase_order.remind at " in out
    assert ": withdraw the purchase-order request and end the deal as expired" in out
    assert "signature.completed" not in out.split("continue with:")[1]
    code, _, err = _cli(po_service, capsys, "threads", "--status", "waiting_event")
    assert code == 0, err

    context = DealTools(po_service).deal_context("PO-1")
    assert context["stage"] == "waiting_event"
    assert context["purchase_order"] == "no purchase order yet"
    assert context["signature"] == "signature.completed"  # the default steps are kept
    assert context["pending"]["node"] == "await_purchase_order"

    page = review_page(po_service, "PO-1")
    assert page["waiting"] is False and page["decisions"] == []
    assert page["waiting_for"] == (f"waiting for purchase_order.received or "
                                   f"purchase_order.cancelled on contract {contract}")
    assert [d["name"] for d in page["report"].deadlines] == [
        "purchase_order.remind", "purchase_order.expire"]
    steps = {s["step"]: s for s in page["steps"]}
    assert steps["await_signature"]["summary"] == "signature.completed"
    assert steps["await_signature"]["who"] == "signer"
    assert "await_purchase_order" not in steps
    assert pending_reviews(po_service) == []  # not a person's review
    pages = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True)
    html = pages.get_template("review.html").render(prefix="/inbox", csrf="c", reviewer="kim",
                                                     **page)
    assert page["waiting_for"] in html
    assert "Procurement reminds the buyer of the purchase order in " in html
    assert "Withdraw the purchase-order request and end the deal as expired in " in html
    assert 'await_signature <span class="who">(signer)</span>' in html


def test_dealflow_event_takes_the_declared_events_only_where_they_are_awaited(
        po_service: DealService, capsys: pytest.CaptureFixture[str]) -> None:
    po_service.start(make_deal("PO-2"))
    code, _, err = _cli(po_service, capsys, "event", "PO-2", "purchase_order.received")
    assert code == 4 and "is waiting_signature, not waiting for a purchase_order event" in err
    code, _, err = _cli(po_service, capsys, "event", "PO-2", "purchase_order.lost")
    assert code == 2 and "invalid choice" in err
    with pytest.raises(SystemExit):  # the default workflow declares no purchase order
        build_parser().parse_args(["event", "PO-2", "purchase_order.received"])
    code, out, err = _cli(po_service, capsys, "event", "PO-2", "signature.completed")
    assert code == 0 and "status waiting_event" in out, err
    code, out, err = _cli(po_service, capsys, "event", "PO-2", "signature.completed")
    assert code == 0 and "signature.completed was already delivered" in out  # a repeat
    code, out, err = _cli(po_service, capsys, "event", "PO-2", "purchase_order.received")
    assert code == 0, err
    assert "✓ buyer" in out and "await_purchase_order" in out and "status completed" in out
    code, out, _ = _cli(po_service, capsys, "event", "PO-2", "purchase_order.received")
    assert code == 0 and "purchase_order.received was already delivered" in out
    report = po_service.status("PO-2")
    assert report.completed_steps[-2:] == ["await_purchase_order", "generate_invoice"]
    assert DealTools(po_service).deal_context("PO-2")["purchase_order"] == \
        "purchase_order.received"
    answered = [e for e in po_service.audit("PO-2") if e.action == "wait.answered"]
    assert [e.actor for e in answered][-1] == "procurement"  # the wait's declared system


def test_the_declared_deadlines_remind_and_expire_with_their_notices_and_calls(
        po_service: DealService) -> None:
    contract = _signed(po_service, "PO-3")
    thread = po_service.deal("PO-3").thread_id
    deadlines = {d.name: d for d in po_service.data.deadlines.for_thread(thread)
                 if d.node == "await_purchase_order"}
    assert {name: d.status for name, d in deadlines.items()} == {
        "purchase_order.remind": "scheduled", "purchase_order.expire": "scheduled"}
    span = deadlines["purchase_order.expire"].due_at - deadlines["purchase_order.remind"].due_at
    assert timedelta(days=7, hours=23) < span < timedelta(days=8, hours=1)  # 10d - 2d

    assert po_service.fire_deadline(deadlines["purchase_order.remind"].id) == "fired"
    assert po_service.fire_deadline(deadlines["purchase_order.remind"].id) == "fired"
    assert po_service.status("PO-3").status == "waiting_event"
    assert po_service.fire_deadline(deadlines["purchase_order.expire"].id) == "expired"

    notes = po_service.records("PO-3")["procurement_notes"]
    assert [(n["contract_id"], n["action"], n["reason"]) for n in notes] == [
        (contract, "remind", None), (contract, "withdraw", "expired")]  # each once
    sent = {m["event"]: m["message"] for m in po_service.data.outbox.for_deal("PO-3")}
    reminder, expired = sent["purchase_order.reminder"], sent["purchase_order.expired"]
    assert reminder["to"] == expired["to"] == "accounts"
    assert reminder["text"].startswith(
        f"PO chase: Acme GmbH owes a purchase order for contract {contract} (waiting since ")
    assert expired["text"] == (f"No purchase order from Acme GmbH for contract {contract}; "
                               "the deal PO-3 expired.")
    effects = [e["effect"] for e in po_service.data.effects.effects("PO-3")]
    assert effects[-2:] == ["procurement.remind_buyer", "procurement.withdraw_request"]
    report = po_service.status("PO-3")
    assert report.status == "expired" and report.deadlines == []
    assert DealTools(po_service).deal_context("PO-3")["purchase_order"] == \
        "purchase_order.expired"
    assert "generate_invoice" not in report.completed_steps

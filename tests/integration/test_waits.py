"""A wait opens in one fenced statement: the wait, its deadlines, its audit entry, its notice."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any, ClassVar

import pytest

from bench.common import CountingCursor, counted_statements
from dealflow.api import DealService
from state import database
from state.audit import Origin
from state.config import Settings
from state.outbox import Notice
from state.transactions import LeaseLost
from tests.helpers import make_deal

DEADLINES = (("review.remind", "remind", timedelta(hours=2)),
             ("review.expire", "expire", timedelta(hours=5)),
             ("review.escalate", "escalate", timedelta(hours=3)))


def test_a_wait_opens_once_in_one_statement_with_its_deadlines_audit_and_notice(
        settings: Settings) -> None:
    origin = Origin("WAIT-1", agent="reviewer", step="human_review", thread_id="t-wait-1")
    notice = Notice("review.requested", "Deal WAIT-1 needs a decision", to="ops@example.com")
    with counted_statements(), DealService(settings) as service:
        waits = service.data.waits
        with service.leases.hold("t-wait-1"):
            before = CountingCursor.statements
            assert waits.open(origin, wait="review", key="k1", deadlines=DEADLINES,
                              notice=notice, detail={"why": "over the threshold"})
            assert CountingCursor.statements - before == 1
            before = CountingCursor.statements  # the node runs again on resume
            assert not waits.open(origin, wait="review", key="k1", deadlines=DEADLINES,
                                  notice=notice)
            assert CountingCursor.statements - before == 1

        wait = waits.get("t-wait-1", "k1")
        assert wait is not None and (wait.wait, wait.node) == ("review", "human_review")
        due = {d.name: d.due_at for d in service.data.deadlines.for_thread("t-wait-1")}
        assert due == {name: wait.opened_at + delay for name, _, delay in DEADLINES}
        opened = [e for e in service.data.audit.entries("WAIT-1") if e.action == "wait.opened"]
        assert len(opened) == 1  # opening again changed nothing
        listed = opened[0].detail["deadlines"]
        assert [d["name"] for d in listed] == [name for name, _, _ in DEADLINES]  # as declared
        assert [datetime.fromisoformat(d["due_at"]) for d in listed] == [
            due[name] for name, _, _ in DEADLINES]
        (message,) = [row["message"] for row in service.data.outbox.for_deal("WAIT-1")]
        assert datetime.fromisoformat(message["due_at"]) == due["review.expire"]  # the last
        assert (message["id"], message["event"], message["to"]) == (
            "t-wait-1:k1:review.requested", "review.requested", "ops@example.com")


def test_a_wait_opened_while_another_process_holds_the_lease_writes_nothing(
        settings: Settings) -> None:
    origin = Origin("WAIT-2", agent="reviewer", step="human_review", thread_id="t-wait-2")
    with DealService(settings) as service, DealService(settings) as other:
        with other.leases.hold("t-wait-2"), pytest.raises(LeaseLost):
            service.data.waits.open(origin, wait="review", key="k1", deadlines=DEADLINES,
                                    notice=Notice("review.requested", "decide"))
        assert service.data.waits.get("t-wait-2", "k1") is None
        assert service.data.deadlines.for_thread("t-wait-2") == []
        assert service.data.outbox.for_deal("WAIT-2") == []
        assert service.data.audit.entries("WAIT-2") == []


class _NamingCursor(CountingCursor):
    """Counts the statements that call each of the waits' functions."""

    calls: ClassVar[Counter[str]] = Counter()

    def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        """Count the wait functions `query` calls, then execute."""
        for name in ("dealflow_open_wait", "dealflow_claim_wait"):
            if name in str(query):
                _NamingCursor.calls[name] += 1
        return super().execute(query, *args, **kwargs)


def test_a_wait_the_service_claimed_is_opened_and_claimed_again_by_the_resumed_node_harmlessly(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The resumed node runs from its top: its opening and its claim change nothing."""
    monkeypatch.setitem(database.CONNECTION_KWARGS, "cursor_factory", _NamingCursor)
    with DealService(settings) as service:
        assert service.start(make_deal("CLAIM-1", "60000.00")).status == "waiting_review"
        _NamingCursor.calls.clear()
        approved = service.resume("CLAIM-1", {"decision": "approve", "reviewer": "kim"})
        assert approved.status == "waiting_signature"
        # the review: claimed by the service, then opened and claimed again by the node
        # (both no-ops); the signature wait: opened once
        assert _NamingCursor.calls == {"dealflow_claim_wait": 2, "dealflow_open_wait": 2}
        _NamingCursor.calls.clear()
        assert service.event("CLAIM-1", "signature.completed").status == "completed"
        assert _NamingCursor.calls == {"dealflow_claim_wait": 2, "dealflow_open_wait": 1}
        # each wait answered once, by the claim that won, and opened once
        opened = [e.step for e in service.data.audit.entries("CLAIM-1")
                  if e.action == "wait.opened"]
        assert opened == ["human_review", "await_signature"]
        answered = [(e.step, e.actor) for e in service.data.audit.entries("CLAIM-1")
                    if e.action == "wait.answered"]
        assert answered == [("human_review", "kim"), ("await_signature", "esign")]
        waits = service.data.waits.for_thread(approved.thread_id)
        assert [(w.wait, w.resolved_by, (w.resolution or {}).get("decision"),
                 (w.resolution or {}).get("event")) for w in waits] == [
            ("review", "kim", "approve", None), ("signature", "esign", None,
                                                  "signature.completed")]

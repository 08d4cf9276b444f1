"""The shared fact store, audit trail and effect ledger on real Postgres."""

from __future__ import annotations

import psycopg
import pytest

from dealflow.api import DealService, thread_id_for
from state.audit import Origin
from state.data import DataLayer
from state.database import Pool, open_pool
from state.fact_store import FactKeyError, VersionConflict
from state.models import Qualification
from tests.helpers import make_deal


@pytest.fixture
def pool(database_url: str):  # type: ignore[no-untyped-def]
    pool = open_pool(database_url)
    yield pool
    pool.close()


def test_stale_version_is_a_conflict_that_writes_nothing(pool: Pool) -> None:
    data = DataLayer.on(pool)
    store = data.facts
    first = store.write("D-9.qualified", {"qualified": True}, agent="lead", expected_version=0)
    assert first.version == 1
    seen_by_project = store.read("D-9.qualified")
    assert seen_by_project is not None and seen_by_project.version == 1
    store.write("D-9.qualified", {"qualified": False}, agent="lead", expected_version=1)
    with pytest.raises(VersionConflict) as caught:
        store.write("D-9.qualified", {"qualified": True}, agent="project", expected_version=1)
    assert (caught.value.agent, caught.value.key, caught.value.expected, caught.value.found) == (
        "project", "D-9.qualified", 1, 2)
    assert "project expected D-9.qualified at version 1, but it is at version 2" in str(
        caught.value)
    current = store.read("D-9.qualified")
    assert current is not None
    assert (current.value, current.version, current.writer) == ({"qualified": False}, 2, "lead")
    assert [c.version for c in store.changes(key="D-9.qualified")] == [1, 2]
    writes = data.audit.entries("D-9", key="D-9.qualified")
    assert [(e.agent, e.detail["version"]) for e in writes] == [("lead", 1), ("lead", 2)]


def test_same_value_by_same_writer_is_not_a_new_version(pool: Pool) -> None:
    store = DataLayer.on(pool).facts
    store.write("D-8.project", {"id": "P1"}, agent="project", expected_version=0)
    again = store.write("D-8.project", {"id": "P1"}, agent="project", expected_version=0)
    assert again.version == 1
    with pytest.raises(VersionConflict):
        store.write("D-8.project", {"id": "P2"}, agent="project", expected_version=0)


@pytest.mark.parametrize("key", ["nodot", "D-1.", ".name", "D-1.Bad-Name", "D-1.x y"])
def test_malformed_keys_are_refused(pool: Pool, key: str) -> None:
    with pytest.raises(FactKeyError):
        DataLayer.on(pool).facts.write(key, 1, agent="lead")


def test_audit_trail_is_append_only(pool: Pool) -> None:
    data = DataLayer.on(pool)
    data.audit.append(Origin(deal_id="D-7", agent="lead"), "note")
    with pool.connection() as conn:
        for sql in ("UPDATE dealflow_audit SET action = 'x'", "DELETE FROM dealflow_audit"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(sql)
    assert len(data.audit.entries("D-7")) == 1


def test_effect_ledger_calls_once_and_returns_the_receipt(pool: Pool) -> None:
    data = DataLayer.on(pool)
    calls: list[int] = []
    receipt = Qualification(score=5, qualified=False, icp_fit=False, reasons=("r",))

    def call(key: str) -> Qualification:
        calls.append(1)
        return receipt

    origin = Origin(deal_id="D-6", agent="lead", step="qualify_lead")
    request = {"score": 5}
    keys = set()
    for _ in range(3):
        got, key = data.effects.perform(origin, "crm.x", request, Qualification, call)
        assert got == receipt
        keys.add(key)
    assert len(calls) == 1 and len(keys) == 1
    actions = [e.action for e in data.audit.entries("D-6")]
    assert actions == ["effect.performed", "effect.reused", "effect.reused"]
    # Other terms (a fork) are another request: performed, not reused.
    _, other = data.effects.perform(origin, "crm.x", {"score": 6}, Qualification, call)
    assert len(calls) == 2 and other not in keys
    assert other.startswith("D-6:qualify_lead:")


def test_a_key_that_comes_back_with_another_request_is_a_conflict(pool: Pool) -> None:
    from state.effects import EffectConflict, effect_key, fingerprint

    data = DataLayer.on(pool)
    origin = Origin(deal_id="D-4", agent="lead", step="qualify_lead")
    key = effect_key("D-4", "qualify_lead", fingerprint("crm.x", {"score": 1}))
    with pool.connection() as conn:  # a row under this key, made for another request
        conn.execute("INSERT INTO dealflow_effects (idempotency_key, fingerprint, deal_id, step,"
                     " effect, status, attempts) VALUES (%s, 'f00', 'D-4', 'qualify_lead',"
                     " 'crm.x', 'claimed', 0)", (key,))
    calls: list[str] = []
    with pytest.raises(EffectConflict, match="was used for another request"):
        data.effects.perform(origin, "crm.x", {"score": 1}, Qualification,
                             lambda k: calls.append(k) or None)  # type: ignore[func-returns-value]
    assert calls == []


def test_interrupted_effect_is_reconciled_or_escalated(pool: Pool) -> None:
    from state.effects import EffectUncertain

    data = DataLayer.on(pool)
    origin = Origin(deal_id="D-5", agent="lead", step="qualify_lead")
    receipt = Qualification(score=1, qualified=False, icp_fit=False, reasons=())
    from state.effects import effect_key, fingerprint

    with pool.connection() as conn:  # an earlier attempt claimed and called, then died
        for effect in ("crm.x", "crm.y"):
            digest = fingerprint(effect, {})
            conn.execute(
                "INSERT INTO dealflow_effects (idempotency_key, fingerprint, deal_id, step,"
                " effect, status, attempts) VALUES (%s, %s, 'D-5', 'qualify_lead', %s,"
                " 'claimed', 1)", (effect_key("D-5", "qualify_lead", digest), digest, effect))
    calls: list[int] = []
    asked: list[str] = []
    got, key = data.effects.perform(origin, "crm.x", {}, Qualification,
                                    lambda k: calls.append(1) or receipt,  # type: ignore[func-returns-value]
                                    lookup=lambda k: asked.append(k) or receipt)  # type: ignore[func-returns-value]
    assert got == receipt and calls == []  # the system had it: no second call
    assert asked == [key]
    with pytest.raises(EffectUncertain, match="cannot be asked"):
        data.effects.perform(origin, "crm.y", {}, Qualification, lambda k: receipt)


def test_agents_share_facts_through_the_store(service: DealService) -> None:
    service.start(make_deal("CTX-1"))
    facts = service.data.facts.deal("CTX-1")
    assert facts["CTX-1.qualified"].value == {"qualified": True, "score": 10, "icp_fit": True}
    assert facts["CTX-1.qualified"].writer == "lead"
    assert facts["CTX-1.project"].writer == "project"
    assert set(facts) == {"CTX-1.qualified", "CTX-1.project", "CTX-1.contract", "CTX-1.envelope"}


def test_audit_explains_the_outcome(service: DealService) -> None:
    service.start(make_deal("AUD-1", "60000.00"))
    service.resume("AUD-1", {"decision": "reject", "comment": "no budget sign-off",
                             "reviewer": "cfo"})
    trail = service.audit("AUD-1")
    actions = [(e.agent, e.action) for e in trail]
    assert actions == [
        ("supervisor", "route"), ("lead", "effect.performed"), ("lead", "context.write"),
        ("supervisor", "route"), ("reviewer", "wait.opened"), ("reviewer", "wait.answered"),
        ("reviewer", "deadline.cancelled"), ("reviewer", "review.decision"),
        ("supervisor", "route.end"),
    ]
    assert trail[5].actor == "cfo" and trail[5].detail["resolution"]["decision"] == "reject"
    assert trail[6].detail["deadlines"] == ["review.remind", "review.escalate",
                                            "review.expire"]  # the defaults, never due
    review = trail[7]
    assert (review.actor, review.reason, review.detail["decision"]) == (
        "cfo", "no budget sign-off", "reject")
    assert "needs approval" in (trail[3].reason or "")
    assert all(e.thread_id == thread_id_for("AUD-1") and e.checkpoint_id for e in trail)
    assert [e.action for e in service.audit("AUD-1", agent="reviewer")] == [
        "wait.opened", "wait.answered", "deadline.cancelled", "review.decision"]


def test_project_agent_refuses_without_the_qualification_fact(service: DealService) -> None:
    with service.pool.connection() as conn:  # another writer has already claimed the fact
        conn.execute("INSERT INTO dealflow_context (key, deal_id, value, version, writer)"
                     " VALUES ('MISS-1.qualified', 'MISS-1', '{\"qualified\": false}', 1, 'x')")
    report = service.start(make_deal("MISS-1"))
    assert report.status == "waiting_review"
    failure = report.context["failures"][0]
    assert failure["step"] == "qualify_lead" and failure["error_type"] == "VersionConflict"

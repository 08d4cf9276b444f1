"""A fork of a deal's thread with other terms performs its own effects, never the other branch's."""

from __future__ import annotations

from decimal import Decimal

from dealflow.api import DealService, thread_id_for
from dealflow.cli import main as cli_main
from tests.helpers import make_deal


def test_a_fork_with_other_terms_makes_its_own_records(service: DealService,
                                                       capsys: object) -> None:
    deal = make_deal("TT-1", "40000.00")
    first = service.start(deal)
    assert first.status == "waiting_signature"
    config = {"configurable": {"thread_id": first.thread_id}}
    graph = service.graph
    after_qualify = next(s for s in graph.get_state_history(config)  # type: ignore[arg-type]
                         if s.values.get("completed_steps") == ["qualify_lead"]
                         and s.next == ("supervisor",))
    edited = deal.model_copy(update={"value": Decimal("75000.00")})
    fork = graph.update_state(after_qualify.config, {"deal": edited})
    graph.invoke(None, fork, context=service.context)
    assert service.status(deal.deal_id).status == "waiting_review"  # 75,000 needs approval
    service.resume(deal.deal_id, {"decision": "approve", "reviewer": "cfo"})
    done = service.event(deal.deal_id, "signature.completed")
    assert done.status == "completed"

    records = service.records(deal.deal_id)
    contracts = {r["contract_id"]: r for r in records["contracts"]}
    current = [r for r in records["contracts"] if r["branch"] == "current"]
    assert len(contracts) == 2 and len(current) == 1
    assert "75,000.00 USD" in current[0]["body"]  # the fork's contract has the fork's terms
    assert done.context["contract"]["contract_id"] == current[0]["contract_id"]
    old = next(r for r in records["contracts"] if r["branch"] == "superseded")
    assert "40,000.00 USD" in old["body"]
    envelopes = sorted((r["branch"], r["status"]) for r in records["envelopes"])
    assert envelopes == [("current", "sent"), ("superseded", "voided")]
    assert [(r["branch"], r["total"]) for r in records["invoices"]] == [
        ("current", Decimal("81000.00"))]
    assert [r["branch"] for r in records["projects"]] == ["current"]  # same request: reused

    reused = [e.detail["effect"] for e in service.audit(deal.deal_id)
              if e.action == "effect.reused"]
    assert reused == ["pm.create_project"]  # the only request the fork repeated
    performed = [e.detail["effect"] for e in service.audit(deal.deal_id)
                 if e.action == "effect.performed"]
    assert performed.count("contracts.store_contract") == 2
    assert performed.count("esign.send_envelope") == 2
    assert "esign.void_envelope" in performed

    assert cli_main(["records", deal.deal_id, "--database-url",
                     service.settings.database_url or ""]) == 0
    shown = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "(superseded, voided)" in shown and "(superseded)" in shown


def test_a_retry_of_the_same_request_reuses_the_receipt(service: DealService) -> None:
    deal = make_deal("TT-2", "40000.00")
    service.start(deal)
    graph, config = service.graph, {"configurable": {"thread_id": thread_id_for("TT-2")}}
    after_qualify = next(s for s in graph.get_state_history(config)  # type: ignore[arg-type]
                         if s.values.get("completed_steps") == ["qualify_lead"]
                         and s.next == ("supervisor",))
    graph.invoke(None, after_qualify.config, context=service.context)  # replay, same terms
    records = service.records(deal.deal_id)
    assert {label: len(rows) for label, rows in records.items()} == {
        "crm": 1, "projects": 1, "contracts": 1, "envelopes": 1, "invoices": 0}
    assert all(r["branch"] == "current" for rows in records.values() for r in rows)

"""A step declared in this file alone runs through the whole stack, named right everywhere.

The `credit_check` step of a `risk` agent on a new sandbox system (`credit`) is
declared here: its node, its output model, its system and one `StepSpec`. No
other module is edited, yet the router, the LLM tools and prompt, the guard,
the state schema, the checkpoint allowlist, the CLI's progress lines and
records, the spans, the audit trail and the crash matrix's kill points all know it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from agents.step_run import StepRun
from agents.systems.sandbox import sandbox_systems
from agents.systems.sandbox_base import SandboxSystem
from dealflow.api import DealService, thread_id_for
from dealflow.render import describe_step
from graph.guard import check_call
from graph.prompts import system_prompt
from graph.tools import openai_tools
from graph.workflow import DEFAULT_WORKFLOW, StepSpec
from state.checkpointer import checkpoint_types
from state.config import Settings
from state.database import open_pool
from state.deal_state import DealState
from tests.helpers import make_deal


class CreditCheck(BaseModel):
    """The risk agent's verdict (the step's output model)."""

    model_config = ConfigDict(frozen=True)
    report_id: str
    score: int
    approved: bool


class SandboxCreditBureau(SandboxSystem):
    """A new system of record, kept in a table this test creates."""

    name, records_label, record_id = "credit", "credit_checks", "report_id"

    def pull_report(self, deal_id: str, company_size: int, *, key: str) -> CreditCheck:
        """Pull the credit report once per key."""
        self.before_call()
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("INSERT INTO test_credit_reports (report_id, deal_id, idempotency_key,"
                         " score) VALUES ('CR-' || nextval('test_credit_seq'), %s, %s, %s)"
                         " ON CONFLICT (idempotency_key) DO NOTHING",
                         (deal_id, key, min(850, 500 + company_size)))
            self.accept(conn, key, {"deal_id": deal_id, "company_size": company_size})
        found = self.lookup(key)
        assert found is not None
        return found

    def lookup(self, key: str) -> CreditCheck | None:
        """The report pulled with `key`."""
        row = self._by_key("test_credit_reports", key)
        return None if row is None else CreditCheck(report_id=row["report_id"],
                                                    score=row["score"],
                                                    approved=row["score"] >= 600)

    def records(self, deal_id: str) -> list[dict[str, Any]]:
        """Reports of the deal."""
        return self._rows("SELECT * FROM test_credit_reports WHERE deal_id = %s", deal_id)


def credit_check(state: DealState, run: StepRun) -> CreditCheck:
    """The node: pull the report through the effect ledger, publish the verdict."""
    bureau = run.system(SandboxCreditBureau)
    size = state.deal.lead.company_size
    report = run.effect("credit.pull_report", CreditCheck, {"company_size": size},
                        lambda key: bureau.pull_report(run.deal_id, size, key=key),
                        bureau.lookup)
    run.write("credit", {"approved": report.approved})
    return report


CREDIT_STEP = StepSpec(
    "credit_check", "risk", credit_check, "credit", CreditCheck,
    "Pull the client's credit report before any contract is drafted.",
    requires=("qualified",), system="credit",
    summary=lambda c: f"credit report {c.report_id}: score {c.score}")
WORKFLOW = DEFAULT_WORKFLOW.with_step(CREDIT_STEP, after="qualify_lead",
                                      required_by=("generate_contract",))
TABLES = ("CREATE SEQUENCE IF NOT EXISTS test_credit_seq",
          "CREATE TABLE IF NOT EXISTS test_credit_reports (report_id text PRIMARY KEY,"
          " deal_id text NOT NULL, idempotency_key text NOT NULL UNIQUE, score int NOT NULL)")


def _service(settings: Settings) -> tuple[DealService, Any]:
    pool = open_pool(settings.database_url or "")
    with pool.connection() as conn:
        for sql in TABLES:
            conn.execute(sql)
    systems = sandbox_systems(pool).with_system(SandboxCreditBureau(pool))
    return DealService(settings, systems=systems, workflow=WORKFLOW), pool


def test_a_deal_runs_through_a_step_declared_in_one_place(settings: Settings) -> None:
    service, pool = _service(settings)
    lines: list[str] = []
    try:
        service.start(make_deal("RISK-1"), on_step=lambda node, update: lines.append(
            describe_step(node, update, service.workflow) or ""))
        report = service.event("RISK-1", "signature.completed")
        assert report.status == "completed"
        assert report.completed_steps.index("credit_check") < report.completed_steps.index(
            "generate_contract")
        assert report.context["credit"]["approved"] is True
        # CLI rendering: the declared agent and summary
        line = next(line for line in lines if "credit_check" in line)
        assert line.split()[:3] == ["✓", "risk", "agent"]
        assert "credit report CR-" in line and "score 800" in line
        # the records, under the system's own label
        records = service.records("RISK-1")
        assert [r["branch"] for r in records["credit_checks"]] == ["current"]
        assert service.systems.record_ids()["credit_checks"] == "report_id"
        # spans and audit name the risk agent and the credit system
        _, spans = service.trace("RISK-1")
        span = next(s for s in spans if s.node == "credit_check")
        assert (span.agent, span.system, span.status) == ("risk", "credit", "ok")
        effects = [(e.agent, e.step, e.detail.get("effect")) for e in service.audit("RISK-1")
                   if e.action == "effect.performed"]
        assert ("risk", "credit_check", "credit.pull_report") in effects
        # the checkpoint allowlist: the output comes back as itself, in a new service
        assert CreditCheck in checkpoint_types(WORKFLOW.state_schema)
        again, pool2 = _service(settings)
        config = {"configurable": {"thread_id": thread_id_for("RISK-1")}}
        values = again.graph.get_state(config).values
        assert type(values["credit"]) is CreditCheck
        again.close()
        pool2.close()
    finally:
        service.close()
        pool.close()


def test_the_llm_supervisor_and_the_guard_know_the_declared_step() -> None:
    tools = {t["function"]["name"]: t for t in openai_tools(WORKFLOW)}
    step_enum = tools["invoke_risk_agent"]["function"]["parameters"]["properties"]["step"]
    assert step_enum.get("enum") == ["credit_check"] or "credit_check" in str(step_enum)
    prompt = system_prompt(Settings(), WORKFLOW)
    assert "credit_check: Pull the client's credit report" in prompt
    assert "invoke_risk_agent(step='credit_check')" in prompt
    assert "invoke_risk_agent" not in {t["function"]["name"]
                                       for t in openai_tools(DEFAULT_WORKFLOW)}
    from state.models import Qualification
    qualified = WORKFLOW.state_schema(deal=make_deal("RISK-2"), qualification=Qualification(
        score=9, qualified=True, icp_fit=True, reasons=()))
    call = {"name": "invoke_risk_agent", "id": "c1",
            "args": {"deal_id": "RISK-2", "step": "credit_check"}}
    assert check_call(call, qualified, Settings(), WORKFLOW).node == "credit_check"  # type: ignore[arg-type]
    contract = {"name": "invoke_contract_agent", "id": "c2",
                "args": {"deal_id": "RISK-2", "step": "generate_contract"}}
    refused = check_call(contract, qualified, Settings(), WORKFLOW)  # type: ignore[arg-type]
    assert refused.node is None and "depends on credit" in refused.reason


def test_crash_matrix_kill_points_come_from_the_declaration() -> None:
    from tests.integration.crash_matrix import kill_points

    assert ("credit_check", "after_effect") in kill_points(WORKFLOW)
    assert {step for step, _ in kill_points(DEFAULT_WORKFLOW)} == {
        "qualify_lead", "create_project", "generate_contract", "send_for_signature",
        "generate_invoice"}

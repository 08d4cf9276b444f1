"""SIGKILL around every call to a real provider: exactly one object per deal at the provider.

For each connector (HubSpot, Asana, DocuSign, Stripe, on their local servers)
a case kills the `dealflow` process running the connector's step: at an
effect kill point (`DEALFLOW_CRASH_AT`), or by the local server right after it
carried out one write of the connector and before its answer left. Then
`dealflow recover` (and the signature, where the deal waits for it) must bring
the deal to `completed` with exactly one object at the provider, the one the
ledger's receipt names. Asana's and DocuSign's lists lag behind writes, as
Stripe's search does, so recovery meets the lag too: the lookups wait
`DEALFLOW_PROVIDER_LAG_SECONDS`, a bit longer than the servers lag.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from agents.project.templates import PROJECT_TEMPLATES
from agents.systems.hubspot import ID_PROPERTY, UPSERT, HubSpotCRM
from graph.workflow import DEFAULT_WORKFLOW
from state.config import Settings
from state.crash import PHASES
from tests.integration.crash_matrix import WARM, _env, after_a_wait
from tests.providers.asana import AsanaServer
from tests.providers.connect import with_hubspot
from tests.providers.docusign import DocuSignServer
from tests.providers.hubspot import HubSpotServer
from tests.providers.server import ProviderServer
from tests.providers.stripe import API_KEY, StripeServer

LAG = 0.5  # seconds the local lists and searches lag behind writes
LEAD = json.dumps({"company_size": 300, "industry": "software", "engagement": 80,
                   "budget": "100000"})
TASKS = sorted(task.title for task in PROJECT_TEMPLATES["implementation"])


def _invoices(stripe: StripeServer, deal_id: str) -> list[str]:
    found = [i for i in stripe.invoices.values()
             if i["metadata"].get("dealflow_deal_id") == deal_id]
    assert all(stripe.sent.count(i["id"]) == 1 for i in found), stripe.sent
    return [i["number"] for i in found]


def _projects(asana: AsanaServer, deal_id: str) -> list[str]:
    found = [p["gid"] for p in asana.projects.values()
             if f"\ndealflow-deal: {deal_id}\n" in p["notes"]]
    for gid in found:  # each task once
        assert sorted(t["name"] for t in asana.tasks_of(gid)) == TASKS, asana.tasks_of(gid)
    return found


def _envelopes(docusign: DocuSignServer, deal_id: str) -> list[str]:
    found = docusign.sent(deal_id)
    assert not docusign.violations and all(e["status"] != "voided" for e in found), found
    return [e["envelopeId"] for e in found]


@dataclass(frozen=True)
class Connector:
    """A provider on its local server, the step that calls it, and what a deal leaves there."""

    name: str
    step: str
    effect: str  # the step's effect in the ledger
    shown: str  # the receipt's field (and the deal context's, if `context`) with the id
    context: str | None
    writes: tuple[tuple[str, int], ...]  # each write to kill after: POST path, calls before it
    server: Callable[[], ProviderServer]  # the local provider, unstarted
    env: Callable[[Any], dict[str, str]]  # the settings that point dealflow at it
    held: Callable[[Any, str], list[str]]  # the deal's objects there (ids), each checked
    setup: Callable[[Any], object] = lambda server: None  # what `systems setup` would do


CONNECTORS = (
    Connector("hubspot", "qualify_lead", "crm.record_qualification", "record_id", None,
              ((UPSERT, 0),), HubSpotServer,
              lambda s: {"DEALFLOW_CRM": "hubspot", "DEALFLOW_HUBSPOT_TOKEN": s.token,
                         "DEALFLOW_HUBSPOT_API_BASE": s.base_url},
              lambda s, deal_id: [d["id"] for d in s.deals_with(ID_PROPERTY, deal_id)],
              lambda s: HubSpotCRM.from_settings(with_hubspot(Settings(), s)).setup()),
    Connector("asana", "create_project", "pm.create_project", "project_id", "project",
              (("/projects", 0), ("/tasks", 0), ("/tasks", len(TASKS) // 2)),
              lambda: AsanaServer(project_lag=LAG, task_lag=LAG),
              lambda s: {"DEALFLOW_PM": "asana", "DEALFLOW_ASANA_TOKEN": s.token,
                         "DEALFLOW_ASANA_API_BASE": s.base_url,
                         "DEALFLOW_ASANA_WORKSPACE": s.workspace},
              _projects),
    Connector("docusign", "send_for_signature", "esign.send_envelope", "envelope_id",
              "envelope", ((r"/restapi/v2\.1/accounts/[^/]+/envelopes", 0),),
              lambda: DocuSignServer(lag=LAG),
              lambda s: {"DEALFLOW_ESIGN": "docusign",
                         "DEALFLOW_DOCUSIGN_BASE_URI": f"{s.base_url}/restapi",
                         "DEALFLOW_DOCUSIGN_ACCOUNT_ID": s.account_id,
                         "DEALFLOW_DOCUSIGN_ACCESS_TOKEN": s.token},
              _envelopes),
    Connector("stripe", "generate_invoice", "billing.issue_invoice", "number", "invoice",
              tuple((call, 0) for call in (
                  "/v1/customers", "/v1/tax_rates", "/v1/invoices", "/v1/invoiceitems",
                  r"/v1/invoices/in_\w+/finalize", r"/v1/invoices/in_\w+/send")),
              lambda: StripeServer(search_lag=1.0),
              lambda s: {"DEALFLOW_BILLING": "stripe", "DEALFLOW_STRIPE_API_KEY": API_KEY,
                         "DEALFLOW_STRIPE_API_BASE": s.base_url},
              _invoices),
)
POINTS = [pytest.param(c, phase, id=f"{c.name}-{phase}") for c in CONNECTORS for phase in PHASES]
WRITES = [pytest.param(c, path, before, id=f"{c.name}-{path.rsplit('/', 1)[-1]}-{before + 1}")
          for c in CONNECTORS for path, before in c.writes]


@dataclass
class Case:
    """One deal of one case: its connector, the started server, the database."""

    connector: Connector
    server: ProviderServer
    url: str
    deal_id: str
    lead: str

    def env(self, **extra: str) -> dict[str, str]:
        return _env(self.url, DEALFLOW_PROVIDER_LAG_SECONDS=str(2 * LAG),
                    **self.connector.env(self.server), **extra)

    def status(self) -> dict[str, Any]:
        done = WARM.run(["status", self.deal_id], self.env())
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    def command(self) -> list[str]:
        """The command that runs the connector's step (after the signature: the event)."""
        run = ["run", "--deal-id", self.deal_id, "--client", "Kill Co", "--value", "9000",
               "--lead", self.lead]
        if not after_a_wait(DEFAULT_WORKFLOW, self.connector.step):
            return run
        assert json.loads(WARM.run(run, self.env()).stdout)["status"] == "waiting_signature"
        return ["event", self.deal_id, "signature.completed"]

    def recover_and_check(self) -> None:
        WARM.run(["recover"], self.env())
        status = self.status()
        if status["status"] == "waiting_signature":  # not signed yet, or killed before it was
            WARM.run(["event", self.deal_id, "signature.completed"], self.env())
            status = self.status()
        held = self.connector.held(self.server, self.deal_id)
        assert status["status"] == "completed", status
        assert len(held) == 1, held
        with psycopg.connect(self.url) as conn:
            receipts = [row[0] for row in conn.execute(
                "SELECT receipt FROM dealflow_effects WHERE deal_id = %s AND effect = %s"
                " AND status = 'performed'", (self.deal_id, self.connector.effect))]
        shown = self.connector.shown
        assert [str(r[shown]) for r in receipts] == held, receipts
        if self.connector.context is not None:
            assert str(status["context"][self.connector.context][shown]) == held[0], status


@pytest.fixture
def case(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> Iterator[Case]:
    connector: Connector = request.node.callspec.params["connector"]
    lead = tmp_path / "lead.json"
    lead.write_text(LEAD)
    with connector.server() as server:
        connector.setup(server)
        yield Case(connector, server, database_url, f"K-{request.node.callspec.id}", str(lead))


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("connector", "phase"), POINTS)
def test_a_kill_at_an_effect_point_of_the_step(case: Case, connector: Connector,
                                               phase: str) -> None:
    command = case.command()
    crash = case.env(DEALFLOW_CRASH_AT=f"{connector.step}:{phase}")
    assert WARM.run(command, crash).returncode == -9
    case.recover_and_check()


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("connector", "path", "before"), WRITES)
def test_a_kill_after_the_provider_carried_out_a_write_before_its_answer(
        case: Case, connector: Connector, path: str, before: int) -> None:
    command = case.command()
    case.server.fail("POST", path, "kill", after=before)
    proc = WARM.start([*command, "--json"], case.env())
    case.server.on_kill = proc.kill
    assert proc.wait(timeout=120) == -9
    case.recover_and_check()

"""A deal with HubSpot as its CRM and Asana as its project tool, end to end."""

from __future__ import annotations

import json

from agents.systems.asana import AsanaProjects
from agents.systems.hubspot import ID_PROPERTY, PROPERTIES, HubSpotCRM
from dealflow.api import DealService
from state.config import Settings
from tests.conftest import cli_env, run_cli
from tests.helpers import make_deal
from tests.providers.asana import AsanaServer
from tests.providers.connect import with_asana, with_hubspot
from tests.providers.hubspot import HubSpotServer


def test_a_deal_runs_against_hubspot_and_asana_to_the_contract_wait(settings: Settings) -> None:
    with HubSpotServer() as hubspot, AsanaServer() as asana:
        both = with_asana(with_hubspot(settings, hubspot), asana)
        HubSpotCRM.from_settings(both).setup()
        with DealService(both) as service:
            assert isinstance(service.systems["crm"], HubSpotCRM)
            assert isinstance(service.systems["pm"], AsanaProjects)
            report = service.start(make_deal("HA-1"))
            assert report.status == "waiting_signature"
            assert report.completed_steps[0] == "qualify_lead"
            assert report.context["failures"] == []

            records = service.records("HA-1")
            (lead,) = records["crm"]
            (deal,) = hubspot.deals_with(ID_PROPERTY, "HA-1")
            assert lead["id"] == int(deal["id"]) and lead["qualified"] is True
            (project,) = records["projects"]
            assert project["project_id"] in asana.projects
            assert [t["title"] for t in project["tasks"]] == \
                [t["name"] for t in asana.tasks_of(project["project_id"])]
            assert report.context["project"]["project_id"] == project["project_id"]

            done = service.event("HA-1", "signature.completed")
            assert done.status == "completed"
        assert len(hubspot.deals) == 1 and len(asana.projects) == 1
        assert hubspot.violations == [] and asana.violations == []


def test_systems_check_names_what_hubspot_lacks_and_setup_creates_it() -> None:
    with HubSpotServer() as hubspot, AsanaServer() as asana:
        env = cli_env(None, DEALFLOW_CRM="hubspot", DEALFLOW_HUBSPOT_TOKEN=hubspot.token,
                      DEALFLOW_HUBSPOT_API_BASE=hubspot.base_url, DEALFLOW_PM="asana",
                      DEALFLOW_ASANA_TOKEN=asana.token, DEALFLOW_ASANA_API_BASE=asana.base_url,
                      DEALFLOW_ASANA_WORKSPACE=asana.workspace)
        before = run_cli(["systems", "check"], env)
        assert before.returncode == 1
        assert before.stderr.strip() == (
            "dealflow systems check: error: crm (hubspot): HubSpot deal properties "
            f"{', '.join(PROPERTIES)} missing: run dealflow systems setup")

        made = run_cli(["systems", "setup", "--json"], env)
        assert made.returncode == 0, made.stderr
        said = {r["system"]: r["said"] for r in json.loads(made.stdout)["systems"]}
        assert said["crm"] == "created " + ", ".join(f"deal property {p}" for p in PROPERTIES)
        assert said["pm"] == "nothing to create"

        after = run_cli(["systems", "check", "--json"], env)
        assert after.returncode == 0, after.stderr
        said = {r["system"]: r["said"] for r in json.loads(after.stdout)["systems"]}
        assert said["crm"].startswith("token accepted; deal properties dealflow_deal_id")
        assert said["pm"] == f"token accepted; workspace Delivery ({asana.workspace})"
        for done in (before, made, after):
            assert hubspot.token not in done.stdout + done.stderr
            assert asana.token not in done.stdout + done.stderr
        assert hubspot.violations == [] and asana.violations == []

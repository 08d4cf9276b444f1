"""The workflow changes under deals in flight: each deal follows the declaration it started on.

A deal waits for its signature while the declaration gains two steps after the
signature, one for new deals only and one for every deal. `dealflow workflow
check` says so per deal; the waiting deal, once signed, runs only the second, a
new deal runs both, and the audit trail names the version every route was made
under. A step renamed under a waiting deal fails the check until the rename is
declared, then the deal finishes in it. A bad `DEALFLOW_WORKFLOW` is one line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict

from agents.step_run import StepRun
from dealflow.api import DealService
from dealflow.cli import main
from dealflow.service.auth import create_token
from dealflow.service.run import service_app
from graph.versions import rename_step
from graph.workflow import DEFAULT_WORKFLOW, StepSpec, Workflow
from state.config import Settings
from state.deal_state import DealState
from tests.conftest import cli_env, run_cli
from tests.helpers import make_deal


class Archive(BaseModel):
    """Where the signed contract was filed."""

    model_config = ConfigDict(frozen=True)
    reference: str


class WelcomePack(BaseModel):
    """The onboarding pack sent to the client."""

    model_config = ConfigDict(frozen=True)
    pack: str


def archive_contract(state: DealState, run: StepRun) -> Archive:
    """File the signed contract (every deal that has not passed this place)."""
    return Archive(reference=f"ARCH-{state.deal.deal_id}")


def send_welcome_pack(state: DealState, run: StepRun) -> WelcomePack:
    """Send the onboarding pack (deals started on a declaration that has it)."""
    return WelcomePack(pack=f"welcome-{state.deal.deal_type}")


V2 = DEFAULT_WORKFLOW.with_step(
    StepSpec("archive_contract", "contract", archive_contract, "archive", Archive,
             "File the signed contract in the archive.", requires=("signature_completed",)),
    after="await_signature").with_step(
    StepSpec("send_welcome_pack", "project", send_welcome_pack, "welcome_pack", WelcomePack,
             "Send the client the onboarding pack.", requires=("signature_completed",),
             new_deals_only=True),
    after="await_signature")
RENAMED = rename_step(DEFAULT_WORKFLOW, "await_signature", "await_countersignature")
UNDECLARED = replace(RENAMED, renamed={})  # the same code, the rename not declared


def _cli(service: DealService, capsys: pytest.CaptureFixture[str], *args: str
         ) -> tuple[int, str, str]:
    code = main(list(args), service=service)
    out, err = capsys.readouterr()
    return code, out, err


def _check(service: DealService, capsys: pytest.CaptureFixture[str]
           ) -> tuple[int, dict[str, dict[str, Any]]]:
    code, out, _ = _cli(service, capsys, "workflow", "check", "--json")
    data = json.loads(out)
    assert data["workflow_version"] == service.workflow.version and data["ok"] == (code == 0)
    return code, {deal["deal_id"]: deal for deal in data["deals"]}


@pytest.fixture
def upgraded(settings: Settings) -> Iterator[DealService]:
    """A `DealService` of the declaration with the two new steps."""
    with DealService(settings, workflow=V2) as service:
        yield service


def _routes(service: DealService, deal_id: str) -> list[tuple[str, str]]:
    return [(e.detail["workflow_version"], e.detail["started_on"])
            for e in service.audit(deal_id, agent="supervisor") if e.action.startswith("route")]


def test_added_steps_apply_as_declared_to_a_waiting_deal_and_to_a_new_one(
        service: DealService, upgraded: DealService, settings: Settings,
        capsys: pytest.CaptureFixture[str]) -> None:
    v1, v2 = DEFAULT_WORKFLOW.version, V2.version
    assert v1 != v2 and service.workflow.version == v1
    assert service.start(make_deal("UP-OLD")).status == "waiting_signature"
    code, out, _ = _cli(service, capsys, "status", "UP-OLD", "--json")
    assert code == 0 and json.loads(out)["workflow_version"] == v1

    code, deals = _check(upgraded, capsys)
    assert code == 0, deals
    old = deals["UP-OLD"]
    assert (old["verdict"], old["waits_in"], old["next"], old["started_on"]) == (
        "same", "await_signature", ["await_signature"], v1)
    assert old["checkpoint_next"] == ["await_signature"]
    assert {a["step"]: a["applies"] for a in old["added"]} == {
        "send_welcome_pack": False, "archive_contract": True}
    assert old["added"][0]["why"] == "new deals only"

    assert upgraded.start(make_deal("UP-NEW")).status == "waiting_signature"
    code, deals = _check(upgraded, capsys)
    assert code == 0 and deals["UP-NEW"]["added"] == [] and deals["UP-NEW"]["started_on"] == v2
    code, out, _ = _cli(upgraded, capsys, "workflow", "check")
    assert code == 0 and "+ archive_contract: runs (the deal has not passed its place)" in out
    assert "+ send_welcome_pack: skipped (new deals only)" in out

    held = upgraded.snapshot(upgraded.deal("UP-OLD").thread_id).values  # in its checkpoint
    assert held["workflow_steps"] == [spec.name for spec in DEFAULT_WORKFLOW.steps]
    old_report = upgraded.event("UP-OLD", "signature.completed")
    assert old_report.status == "completed" and old_report.workflow_version == v1
    assert "archive_contract" in old_report.completed_steps
    assert "send_welcome_pack" not in old_report.completed_steps
    values = upgraded.snapshot(upgraded.deal("UP-OLD").thread_id).values
    assert (values["workflow_version"], values["workflow_adopted"]) == (v1, ["archive_contract"])
    new_report = upgraded.event("UP-NEW", "signature.completed")
    assert new_report.status == "completed" and new_report.workflow_version == v2
    assert {"archive_contract", "send_welcome_pack"} <= set(new_report.completed_steps)

    routes = _routes(upgraded, "UP-OLD")  # every route names its declaration and the deal's
    assert {started for _, started in routes} == {v1}
    assert [version for version, _ in routes] == [v1] * 4 + [v2] * 2
    assert set(_routes(upgraded, "UP-NEW")) == {(v2, v2)}
    token = create_token(upgraded.pool, "ops", "operator")
    with TestClient(service_app(upgraded, workers=0)) as api:
        shown = api.get("/v1/deals/UP-OLD", headers={"Authorization": f"Bearer {token}"})
    assert shown.status_code == 200 and shown.json()["workflow_version"] == v1
    code, deals = _check(upgraded, capsys)
    assert code == 0 and deals == {}  # both ended


def test_a_renamed_wait_fails_the_check_until_declared_then_the_deal_finishes_in_it(
        service: DealService, settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert service.start(make_deal("RN-1")).status == "waiting_signature"
    with DealService(settings, workflow=UNDECLARED) as undeclared:
        code, deals = _check(undeclared, capsys)
        assert code == 1 and deals["RN-1"]["verdict"] == "undeclared_wait"
        assert deals["RN-1"]["waits_in"] == "await_signature"
        code, out, _ = _cli(undeclared, capsys, "workflow", "check")
        assert code == 1 and "✗ RN-1" in out and "await_signature, which the declaration" in out
    with DealService(settings, workflow=RENAMED) as renamed:
        code, deals = _check(renamed, capsys)
        assert code == 0, deals
        assert (deals["RN-1"]["verdict"], deals["RN-1"]["next"]) == (
            "same", ["await_countersignature"])
        assert renamed.status("RN-1").status == "waiting_signature"
        thread = renamed.deal("RN-1").thread_id
        (remind,) = [d for d in renamed.data.deadlines.for_thread(thread)
                     if d.name == "signature.remind"]
        assert renamed.fire_deadline(remind.id) == "fired"  # its deadlines still act
        code, out, err = _cli(renamed, capsys, "event", "RN-1", "signature.completed")
        assert code == 0 and "status completed" in out, err
        report = renamed.status("RN-1")
        assert report.completed_steps[-2:] == ["await_countersignature", "generate_invoice"]
        assert report.context["signature"]["event"] == "signature.completed"
        assert renamed.start(make_deal("RN-2")).pending["node"] == "await_countersignature"


def test_a_removed_wait_moves_the_deal_on_when_recovered(
        service: DealService, settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert service.start(make_deal("RM-1")).status == "waiting_signature"
    steps = tuple(replace(s, requires=("project", "contract")) if s.name == "generate_invoice"
                  else s for s in DEFAULT_WORKFLOW.steps if s.name != "await_signature")
    without = Workflow(steps, waits=DEFAULT_WORKFLOW.waits[:1], removed=("await_signature",))
    with DealService(settings, workflow=without) as removed:
        code, deals = _check(removed, capsys)
        assert code == 0 and deals["RM-1"]["verdict"] == "moved"
        assert deals["RM-1"]["next"] == ["generate_invoice"]
        assert deals["RM-1"]["dropped"] == ["await_signature"]
        (recovered,) = removed.recover()
        assert recovered.status == "completed" and "await_signature" not in \
            recovered.completed_steps


def test_a_checkpoint_the_new_state_types_cannot_read_is_a_problem(
        settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    with DealService(settings, workflow=V2) as upgraded:
        upgraded.start(make_deal("UR-1"))
        upgraded.event("UR-1", "signature.completed")  # completed: has both new outputs
        upgraded.start(make_deal("UR-2"))

    class StricterArchive(BaseModel):
        reference: str
        shelf: int  # the old archive has none

    strict = replace(V2, steps=tuple(replace(s, output_model=StricterArchive)
                                     if s.output == "archive" else s for s in V2.steps))
    with DealService(settings, workflow=strict) as service:
        service.registry.set_status(service.deal("UR-1").thread_id, "running")  # as if open
        code, deals = _check(service, capsys)
    assert code == 1 and deals["UR-1"]["verdict"] == "unreadable"
    assert "ValidationError" in deals["UR-1"]["message"]
    assert deals["UR-2"]["verdict"] == "same"


def test_workflow_show_and_a_configured_workflow(database_url: str) -> None:
    env = cli_env(database_url, DEALFLOW_WORKFLOW=f"{__name__}:V2")
    shown = run_cli(["workflow", "show", "--json"], env)
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["version"] == V2.version
    assert [s["name"] for s in data["steps"]][5:] == [
        "send_welcome_pack", "archive_contract", "generate_invoice"]
    assert data["steps"][5]["new_deals_only"] is True
    text = run_cli(["workflow", "show"], env).stdout
    assert text.startswith(f"workflow {V2.version} · 8 steps") and "new deals only" in text
    started = run_cli(["run", "--deal-id", "CF-1", "--client", "Acme", "--value", "900"], env)
    assert started.returncode == 0, started.stderr
    status = json.loads(run_cli(["status", "CF-1", "--json"], env).stdout)
    assert status["workflow_version"] == V2.version
    assert run_cli(["workflow", "check"], env).returncode == 0


@pytest.mark.parametrize(("value", "said"), [
    ("no_such_module:WORKFLOW", "cannot import module 'no_such_module'"),
    (f"{__name__}:NOTHING", "has no attribute 'NOTHING'"),
    (f"{__name__}:make_deal", "'make_deal' is a function, not a graph.workflow.Workflow"),
    ("not a path", "configuration workflow (DEALFLOW_WORKFLOW)"),
])
def test_a_bad_configured_workflow_is_one_line_and_exit_2(database_url: str, value: str,
                                                           said: str) -> None:
    for args in (["workflow", "show"], ["status", "X-1"], ["threads"]):
        done = run_cli(args, cli_env(database_url, DEALFLOW_WORKFLOW=value))
        assert done.returncode == 2, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and said in done.stderr, done.stderr

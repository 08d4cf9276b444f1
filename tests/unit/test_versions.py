"""Workflow versions and the declaration a deal follows, on the unit tests' small workflow."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import ToolCall

from graph.guard import check_call
from graph.nodes import HUMAN_REVIEW, SUPERVISOR
from graph.tools import agent_tools
from graph.upgrade import judge
from graph.versions import added_steps, describe, follow, rename_step, started_on
from graph.workflow import DEFAULT_WORKFLOW, Workflow, WorkflowError
from state.config import Settings
from state.deal_state import DealState
from tests.helpers import make_deal
from tests.unit.small_workflow import ACKED, DONE, INTAKE, SMALL, step

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = Settings()
# after the ack, a step for every deal and one for new deals only; `bill` needs both
SEAL = step("seal", "paper", "seal_out", requires=("acked",))
GIFT = step("gift", "desk", "gift_out", requires=("acked",), new_deals_only=True)
V2 = SMALL.with_step(SEAL, after="await_ack", required_by=("bill",)).with_step(
    GIFT, after="seal", required_by=("bill",))
WAITING = {"intake_out": INTAKE, "build_out": DONE, "draft_out": DONE, "dispatch_out": DONE}


def on(workflow: Workflow, started: Workflow | None, **outputs: Any) -> DealState:
    """A state of `workflow`'s schema for a deal that started on `started` (None: unversioned)."""
    recorded = started_on(started) if started is not None else {}
    return workflow.state_schema(deal=make_deal("V-1"), **recorded, **outputs)


def test_the_version_is_a_digest_of_the_declaration_stable_across_processes() -> None:
    code = "from graph.workflow import DEFAULT_WORKFLOW as W; print(W.version)"
    other = subprocess.run([sys.executable, "-c", code], cwd=ROOT, text=True, check=True,
                           capture_output=True, env={"PYTHONHASHSEED": "7", "PATH": ""})
    assert other.stdout.strip() == DEFAULT_WORKFLOW.version  # another process, other hashes
    assert len(SMALL.version) == 12 and int(SMALL.version, 16) >= 0
    same = Workflow(tuple(replace(s, description="Reworded.", summary=lambda o: "other")
                          for s in SMALL.steps), waits=SMALL.waits)
    assert same.version == SMALL.version  # words and Python objects are not the process
    changed = [V2, SMALL.with_step(step("extra", "desk", "extra_out")),
               Workflow(tuple(replace(s, requires=()) if s.name == "bill" else s
                              for s in SMALL.steps), waits=SMALL.waits),
               Workflow(SMALL.steps, waits=(replace(SMALL.waits[0], deadlines=SMALL.waits[0]
                                                    .deadlines[:1]),)),
               rename_step(SMALL, "await_ack", "await_receipt")]
    assert len({SMALL.version, *(w.version for w in changed)}) == 1 + len(changed)
    assert describe(V2)["steps"][6] == {**describe(V2)["steps"][6], "name": "gift",
                                        "new_deals_only": True, "requires": ["acked"]}


def test_a_deal_follows_the_steps_its_declaration_had_and_those_added_for_every_deal() -> None:
    old = on(V2, SMALL, **WAITING)
    follows = V2.for_deal(old)
    assert [s.name for s in follows.steps] == [*(s.name for s in SMALL.steps[:5]), "seal",
                                               "bill"]
    assert follows.step("bill").requires == ("build_out", "acked", "seal_out")
    assert V2.for_deal(old) is follows  # made once
    assert V2.for_deal(on(V2, V2, **WAITING)) is V2
    assert [(a.step, a.applies) for a in added_steps(V2, old)] == [("seal", True),
                                                                    ("gift", False)]
    signed = on(V2, SMALL, **WAITING, ack_out=ACKED)
    assert [s.name for s in V2.for_deal(signed).ready_steps(signed)] == ["seal"]
    desk = agent_tools(V2.for_deal(signed))["invoke_desk_agent"]  # the LLM's tools follow it
    assert [spec.name for spec in desk.steps] == ["intake"]
    call = ToolCall(name="invoke_desk_agent", args={"deal_id": "V-1", "step": "gift"}, id="c1")
    refused = check_call(call, signed, SETTINGS, V2.for_deal(signed))  # and so does the guard
    assert not refused.allowed and "malformed arguments" in refused.reason
    assert check_call(call, on(V2, V2, **WAITING, ack_out=ACKED), SETTINGS, V2).allowed
    assert {s.name for s in V2.ready_steps(on(V2, V2, **WAITING, ack_out=ACKED))} == {
        "seal", "gift"}


def test_a_step_a_deal_adopted_keeps_applying_once_a_later_step_is_done() -> None:
    v3 = SMALL.with_step(step("seal", "paper", "seal_out", requires=("acked",)),
                         after="await_ack")  # nothing needs it: bill may finish first
    signed = on(v3, SMALL, **WAITING, ack_out=ACKED)
    follows, update = follow(v3, signed)
    assert update == {"workflow_adopted": ["seal"]} and follows is v3
    billed = {**WAITING, "ack_out": ACKED, "bill_out": DONE}  # seal failed, bill did not
    assert "seal" not in [s.name for s in v3.for_deal(on(v3, SMALL, **billed)).steps]
    kept = on(v3, SMALL, **billed, **update)
    assert v3.for_deal(kept) is v3 and v3.outcome_of(kept) is None
    assert follow(v3, kept)[1] == {} and added_steps(v3, kept) == []


def test_a_deal_past_the_place_of_an_added_step_does_not_run_it() -> None:
    early = step("vet", "desk", "vet_out", requires=("accepted",))
    v3 = SMALL.with_step(early, after="intake")
    past = on(v3, SMALL, **WAITING)  # build, draft and dispatch are done
    assert [(a.step, a.applies) for a in added_steps(v3, past)] == [("vet", False)]
    assert "build is done" in added_steps(v3, past)[0].why
    assert "vet" not in [s.name for s in v3.for_deal(past).steps]
    fresh = on(v3, SMALL, intake_out=INTAKE)
    assert {s.name for s in v3.for_deal(fresh).ready_steps(fresh)} == {"vet", "build", "draft"}
    unversioned = on(V2, None, **WAITING)  # started before versions were kept
    assert [(a.step, a.applies) for a in added_steps(V2, unversioned)] == [("gift", False)]


def test_renames_and_removals_are_checked_and_followed() -> None:
    renamed = rename_step(SMALL, "await_ack", "await_receipt")
    assert renamed.renamed == {"await_ack": "await_receipt"}
    assert renamed.step("await_ack").name == "await_receipt"
    assert renamed.waiting_status("await_ack") == "waiting_event"
    assert renamed.wait_policy("await_ack") is renamed.wait_policy("await_receipt")
    assert renamed.agent_of("await_ack") == "recipient"
    with pytest.raises(WorkflowError, match="renamed 'x' to 'y', which is not a declared"):
        Workflow(SMALL.steps, renamed={"x": "y"})
    with pytest.raises(WorkflowError, match="removed 'bill': it is still a declared step"):
        Workflow(SMALL.steps, removed=("bill",))
    assert hash(renamed) == hash(replace(renamed))  # still a cache key


def test_judge_says_what_runs_next_against_the_checkpoint() -> None:
    old = on(V2, SMALL, **WAITING)
    assert judge(V2, SETTINGS, old, "await_ack", ["await_ack"]).verdict == "same"
    assert judge(V2, SETTINGS, old, HUMAN_REVIEW, [HUMAN_REVIEW]).verdict == "same"
    gone = judge(V2, SETTINGS, old, "await_old", ["await_old"])
    assert (gone.verdict, gone.problem) == ("undeclared_wait", True)
    signed = on(V2, SMALL, **WAITING, ack_out=ACKED)
    assert judge(V2, SETTINGS, signed, None, [SUPERVISOR]).next == ("seal",)
    scheduled = judge(V2, SETTINGS, signed, None, ["bill"])  # scheduled before seal existed
    assert (scheduled.verdict, scheduled.next) == ("different", ("bill",))
    assert "the rules now choose seal" in scheduled.message
    new = on(V2, SMALL, **WAITING, ack_out=ACKED, seal_out=DONE, bill_out=DONE)
    assert judge(V2, SETTINGS, new, None, []).next == ()  # completed: nothing else runs
    stuck = Workflow((*SMALL.steps[:5], replace(SMALL.steps[5], requires=("never_out",)),
                      step("never", "desk", "never_out", requires=("never_out",))))
    assert judge(stuck, SETTINGS, on(stuck, stuck, **WAITING, ack_out=ACKED), None,
                 [SUPERVISOR]).verdict == "stuck"
    removed = Workflow((*SMALL.steps[:4], replace(SMALL.steps[5], requires=("build_out",))),
                       removed=("await_ack",))
    moved = judge(removed, SETTINGS, on(removed, SMALL, **WAITING), "await_ack", ["await_ack"])
    assert (moved.verdict, moved.next) == ("moved", ("bill",))

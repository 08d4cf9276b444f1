"""What a wait is comes from its declaration: delays, notices, events, hints (no database)."""

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agents.systems import Systems
from dealflow.cli_parser import build_parser
from dealflow.deadlines import missing_calls
from dealflow.render import next_steps, render_report, waiting_line
from dealflow.reports import DealReport
from graph.nodes import HUMAN_REVIEW
from graph.wait_policy import DeadlineSpec, WaitPolicy
from graph.workflow import DEFAULT_WORKFLOW
from state.config import Settings
from state.models import OPEN_STATUSES, SIGNATURE_EVENTS, STATUSES
from tests.unit.small_workflow import ACK_WAIT, SMALL

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def report(status: str, node: str | None, **context: Any) -> DealReport:
    return DealReport(thread_id="t-1", deal_id="D-1", status=status, completed_steps=[],
                      pending={"node": node} if node else None, context=context)


def test_a_deadline_takes_its_setting_if_there_is_one_else_its_declared_delay() -> None:
    review = DEFAULT_WORKFLOW.wait_policy(HUMAN_REVIEW)
    assert review is not None
    delays = {name: delay for name, _, delay in review.delays(
        Settings(review_remind_after=timedelta(seconds=5), review_escalate_after=None))}
    assert delays == {"review.remind": timedelta(seconds=5), "review.expire": timedelta(days=7)}
    assert [(name, action, delay) for name, action, delay in ACK_WAIT.delays(Settings())] == [
        ("ack.remind", "remind", timedelta(hours=1)), ("ack.expire", "expire", timedelta(days=1))]


def test_a_notice_is_its_declared_template_filled_in() -> None:
    remind = ACK_WAIT.spec("ack.remind")
    assert remind.text(client="Acme", handle="dispatch_out R-1", since="today") == \
        "Nudged Acme about dispatch_out R-1 (since today)."
    assert ACK_WAIT.spec("ack.expire").text(name="ack.expire", deal="Acme (D-1)") == \
        "ack.expire for Acme (D-1)"
    with pytest.raises(ValueError, match="unknown placeholder"):
        DeadlineSpec("remind", "r", notice="Hi {signer}")
    with pytest.raises(KeyError, match="declares no deadline"):
        WaitPolicy("x", "n", ()).spec("x.remind")


def test_event_steps_wait_in_their_declared_status_and_take_their_declared_events() -> None:
    assert SMALL.waiting_status("await_ack") == "waiting_event"  # none declared: generic
    assert SMALL.waiting_status("build") is None
    assert DEFAULT_WORKFLOW.waiting_status("await_signature") == "waiting_signature"
    assert SMALL.events == ("ack.given", "ack.refused")
    assert SMALL.event_step("ack.refused").name == "await_ack"
    with pytest.raises(KeyError, match=r"unknown ack event 'ack\.lost' \(expected: ack\.given"):
        SMALL.event_step("ack.lost")
    assert (SMALL.wait_name("await_ack"), SMALL.answered_by("await_ack")) == ("ack", "post")
    assert (SMALL.wait_name(HUMAN_REVIEW), SMALL.answered_by(HUMAN_REVIEW)) == (
        "review", "reviewer")


def test_the_cli_hints_and_accepts_the_waiting_steps_declared_events() -> None:
    waiting = report("waiting_event", "await_ack", dispatch_out={"ref": "R-7"})
    assert waiting_line(waiting, SMALL) == "waiting for ack.given or ack.refused on " \
                                           "dispatch_out R-7"
    assert next_steps(waiting, SMALL) == ["dealflow event D-1 ack.given",
                                          "dealflow event D-1 ack.refused"]
    assert "on dispatch_out" not in (waiting_line(report("waiting_event", "await_ack"), SMALL)
                                     or "")
    assert next_steps(report("running", None), SMALL) == []
    assert build_parser(SMALL).parse_args(["event", "D-1", "ack.given"]).event == "ack.given"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["event", "D-1", "ack.given"])


def test_the_default_workflow_is_what_the_readme_says() -> None:
    assert DEFAULT_WORKFLOW.events == SIGNATURE_EVENTS
    text = render_report(report("waiting_signature", "await_signature",
                                envelope={"envelope_id": "ENV-000001"}).model_copy(
        update={"deal_id": "D-1001"}), DEFAULT_WORKFLOW)
    shown = text.split("\n", 2)[2]  # the lines after the thread and the completed steps
    assert shown in README, shown
    statuses = README[README.index("Statuses:"):].split("Errors print", 1)[0]
    assert all(f"`{status}`" in statuses for status in STATUSES), statuses
    assert set(OPEN_STATUSES) == {"running", "waiting_review", "waiting_signature",
                                  "waiting_event"}
    assert [p.name for p in DEFAULT_WORKFLOW.waits] == ["review", "signature"]


class _Post:
    """A system with the nudge the small workflow's reminder calls, and no lookup."""

    name = "post"

    def nudge(self, ref: str, *, key: str) -> None:
        """Nudge the recipient of `ref`."""


def test_a_deadline_call_the_system_cannot_make_is_refused_before_anything_runs() -> None:
    assert missing_calls(SMALL, Systems({"post": _Post()})) == ["post.lookup"]  # type: ignore[dict-item]
    assert missing_calls(SMALL, Systems({})) == []  # a missing system is refused apart
    assert missing_calls(DEFAULT_WORKFLOW, Systems({})) == []

import pytest

from graph.review import ReviewAnswerError, parse_review_answer
from graph.signature import SignatureEventError, parse_signature_event


def test_plain_and_dict_answers() -> None:
    assert parse_review_answer("approve", "approval").decision == "approve"
    answer = parse_review_answer({"decision": "retry", "comment": "back up", "reviewer": "kim"},
                                 "failure")
    assert (answer.decision, answer.comment, answer.reviewer) == ("retry", "back up", "kim")


def test_hitl_response_shape_maps_approve_to_the_review_kind() -> None:
    hitl = {"decisions": [{"type": "approve"}]}
    assert parse_review_answer(hitl, "approval").decision == "approve"
    assert parse_review_answer(hitl, "failure").decision == "retry"
    rejected = parse_review_answer({"decisions": [{"type": "reject", "message": "no"}]},
                                   "failure")
    assert (rejected.decision, rejected.comment) == ("reject", "no")


def test_agent_inbox_human_response_list_is_accepted() -> None:
    accept = [{"type": "accept", "args": None}]
    assert parse_review_answer(accept, "approval").decision == "approve"
    assert parse_review_answer(accept, "failure").decision == "retry"
    assert parse_review_answer(accept, "escalation").decision == "approve"
    ignored = parse_review_answer([{"type": "ignore", "args": "not this quarter"}], "approval")
    assert (ignored.decision, ignored.comment) == ("reject", "not this quarter")


@pytest.mark.parametrize(
    ("value", "kind", "message"),
    [
        ("retry", "approval", "does not fit the pending approval review"),
        ("approve", "failure", "does not fit the pending failure review"),
        ({"decision": "yes"}, "approval", "decision"),
        ({"decision": "approve", "extra": 1}, "approval", "extra"),
        ({"decision": "approve", "comment": "x" * 2001}, "approval", "comment"),
        (42, "approval", "must be an object"),
        (None, "approval", "must be an object"),
        ({"decisions": []}, "approval", "exactly one decision"),
        ({"decisions": [{"type": "edit"}]}, "approval", "must name the pending action"),
        ({"decisions": [{"type": "edit"}]}, "failure", "an edit fits only an approval"),
        ({"decisions": [{"type": "respond"}]}, "approval", "allowed: approve, edit, reject"),
        ([{"type": "response", "args": "hmm"}], "approval", "cannot decide this review"),
        ([{"type": "edit", "args": {}}], "approval", "cannot decide this review"),
        ([], "approval", "exactly one response"),
        ([{"type": "accept"}, {"type": "ignore"}], "approval", "exactly one response"),
        (["accept"], "approval", "exactly one response"),
    ],
)
def test_bad_answers_are_refused_clearly(value: object, kind: str, message: str) -> None:
    with pytest.raises(ReviewAnswerError, match=message):
        parse_review_answer(value, kind)  # type: ignore[arg-type]


def test_signature_events() -> None:
    assert parse_signature_event("signature.completed") == "signature.completed"
    assert parse_signature_event({"event": "signature.declined"}) == "signature.declined"
    for bad in ("signature.lost", {"evt": "signature.completed"}, None, ["signature.completed"]):
        with pytest.raises(SignatureEventError, match="unknown signature event"):
            parse_signature_event(bad)

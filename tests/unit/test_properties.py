"""Property-based tests: every input either works or gives the promised clear error."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dealflow.api import parse_deal
from dealflow.cli import build_parser
from dealflow.errors import InvalidInput
from graph.review import ReviewAnswerError, parse_review_answer
from graph.signature import SignatureEventError, parse_signature_event

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children,
                                                                       max_size=4),
    max_leaves=12)
anything = st.one_of(st.text(), st.integers(), st.floats(), st.decimals(), st.none(),
                     st.booleans(), json_values)
FIELDS = ("deal_id", "client", "value", "currency", "deal_type")
LEAD_FIELDS = ("company_size", "budget", "industry", "engagement", "contact_name",
               "contact_email", "notes")


@st.composite
def deal_inputs(draw: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"deal_id": "D-1", "client": "Acme", "value": "100"}
    for field in draw(st.sets(st.sampled_from(FIELDS))):
        data[field] = draw(anything)
    if draw(st.booleans()):
        data["lead"] = {f: draw(anything) for f in draw(st.sets(st.sampled_from(LEAD_FIELDS)))}
    if draw(st.booleans()):
        data[draw(st.text(max_size=8))] = draw(anything)
    return data


@settings(max_examples=400, deadline=None)
@given(deal_inputs())
def test_deal_input_validates_or_names_the_field(data: dict[str, Any]) -> None:
    try:
        deal = parse_deal(data)
    except InvalidInput as exc:
        assert str(exc).startswith("invalid deal: ") and len(str(exc).splitlines()) == 1
        return
    stored = json.dumps(deal.model_dump(mode="json"))  # what the registry stores as jsonb
    assert "\\u0000" not in stored
    assert deal.value > 0


@settings(max_examples=400, deadline=None)
@given(anything, st.sampled_from(["approval", "failure", "escalation"]))
def test_resume_payloads_parse_or_are_refused_clearly(value: Any, kind: str) -> None:
    try:
        answer = parse_review_answer(value, kind)  # type: ignore[arg-type]
    except ReviewAnswerError as exc:
        assert str(exc) and len(str(exc)) < 400
        return
    assert answer.decision in {"approval": ("approve", "reject"), "failure": ("retry", "reject"),
                               "escalation": ("approve", "reject")}[kind]


@settings(max_examples=300, deadline=None)
@given(anything)
def test_event_names_parse_or_are_refused(value: Any) -> None:
    try:
        assert parse_signature_event(value) in ("signature.completed", "signature.declined")
    except SignatureEventError as exc:
        assert "unknown signature event" in str(exc)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=st.lists(st.sampled_from(["run", "resume", "event", "status", "threads", "--json",
                                 "--deal-id", "--value", "--client", "--decision", "approve",
                                 "--status", "bogus", "--since", "-x", "", "x" * 300]),
                max_size=8))
def test_cli_arguments_parse_or_exit_2_with_one_line(capsys: pytest.CaptureFixture[str],
                                                     argv: list[str]) -> None:
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:
        err = capsys.readouterr().err
        assert exc.code in (0, 2)
        if exc.code == 2:
            assert len(err.strip().splitlines()) == 1, err

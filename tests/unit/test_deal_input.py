from decimal import Decimal

import pytest
from pydantic import ValidationError

from dealflow.api import parse_deal
from dealflow.errors import InvalidInput
from tests.helpers import deal_data


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"value": "-1"}, "value"),
        ({"value": "0"}, "value"),
        ({"value": "1000000000.01"}, "value"),
        ({"value": "1.001"}, "value"),
        ({"value": "NaN"}, "value"),
        ({"client": "   "}, "client"),
        ({"client": "a\x00b"}, "client"),
        ({"deal_id": "-starts-with-dash"}, "deal_id"),
        ({"deal_id": "x" * 65}, "deal_id"),
        ({"currency": "usd"}, "currency"),
        ({"deal_type": "gift"}, "deal_type"),
        ({"lead": {"company_size": 0}}, "lead.company_size"),
        ({"lead": {"contact_email": "a@b"}}, "lead.contact_email"),
        ({"lead": {"notes": "x" * 4001}}, "lead.notes"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_input_names_the_field(change: dict[str, object], field: str) -> None:
    data = deal_data()
    if "lead" in change:
        data["lead"] = {**data["lead"], **change.pop("lead")}  # type: ignore[dict-item]
    data.update(change)
    with pytest.raises(InvalidInput) as caught:
        parse_deal(data)
    assert str(caught.value).startswith(f"invalid deal: {field}:")


def test_missing_client_is_named() -> None:
    data = deal_data()
    del data["client"]
    with pytest.raises(InvalidInput, match="client: Field required"):
        parse_deal(data)


def test_good_input_is_normalised() -> None:
    deal = parse_deal({**deal_data(), "client": "  Acme  ", "value": "12000"})
    assert deal.client == "Acme" and deal.value == Decimal("12000")
    assert deal.value_usd == Decimal("12000")
    with pytest.raises(ValidationError):
        deal.model_copy(update={}).__setattr__("client", "x")

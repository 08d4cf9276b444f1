"""Strict checkpoint deserialization: our types revive, strangers and pickle do not."""

from __future__ import annotations

import pickle
from datetime import timedelta
from pathlib import Path

import pytest
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from pydantic import BaseModel

from state.checkpointer import checkpoint_serializer
from state.models import Qualification

PERMISSIVE = JsonPlusSerializer(allowed_msgpack_modules=True)


class Stranger(BaseModel):
    secret: int = 7


class _Planted:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.marker,))


def test_our_types_and_safe_types_come_back_as_themselves() -> None:
    value = Qualification(score=7, qualified=True, icp_fit=True, reasons=("r",))
    assert checkpoint_serializer().loads_typed(PERMISSIVE.dumps_typed(value)) == value
    blob = PERMISSIVE.dumps_typed(timedelta(days=2))
    assert checkpoint_serializer().loads_typed(blob) == timedelta(days=2)


def test_unlisted_type_is_not_revived() -> None:
    loaded = checkpoint_serializer().loads_typed(PERMISSIVE.dumps_typed(Stranger()))
    assert not isinstance(loaded, Stranger)
    assert loaded == {"secret": 7}


def test_pickle_blob_is_refused_and_runs_no_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(NotImplementedError, match="pickle"):
        checkpoint_serializer().loads_typed(("pickle", pickle.dumps(_Planted(marker))))
    assert not marker.exists()

"""What the held-writes timer does with rows it could not save."""

from __future__ import annotations

import time
from typing import Any

from state.held_writes import HeldWrites
from state.statements import Batch
from state.transactions import DealOwnedElsewhere, LeaseLost

ROW: Batch = ("INSERT INTO dealflow_spans (node) VALUES (%s)", [("supervisor",)])


def _held_refusing(error: Exception) -> tuple[HeldWrites, list[Any]]:
    attempts: list[Any] = []

    def save(thread: str, batches: list[Batch]) -> None:
        attempts.append((thread, batches))
        raise error

    held = HeldWrites(save, hold_seconds=0.01,
                      keep=lambda exc: isinstance(exc, DealOwnedElsewhere))
    held.seen("T", "cp-1")
    assert held.hold("T", "cp-1", ROW)
    deadline = time.monotonic() + 30
    while not attempts and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # time for the timer to try again, if it would
    return held, attempts


def test_rows_refused_for_another_threads_deal_stay_held_for_the_next_checkpoint() -> None:
    held, attempts = _held_refusing(DealOwnedElsewhere("deal D already runs in thread A"))
    assert attempts == [("T", [ROW])]  # tried once by the timer, not again
    assert held.take("T") == [ROW]  # the thread's next checkpoint carries them, and fails


def test_rows_of_a_lost_lease_are_dropped() -> None:
    held, attempts = _held_refusing(LeaseLost("lease taken over"))
    assert attempts == [("T", [ROW])]
    assert held.take("T") == []  # the new owner runs the task again


def test_rows_taken_while_a_save_is_under_way_wait_for_it() -> None:
    """The audit trail's order: a newer row never lands before an older one being saved."""
    order: list[str] = []

    def slow_save(thread: str, batches: list[Batch]) -> None:
        order.append("save started")
        time.sleep(0.3)
        order.append("save done")

    held = HeldWrites(slow_save, hold_seconds=0.01)
    held.seen("T", "cp-1")
    assert held.hold("T", "cp-1", ROW)
    deadline = time.monotonic() + 30
    while not order and time.monotonic() < deadline:
        time.sleep(0.005)
    held.hold_seconds = 60.0
    newer: Batch = ("INSERT INTO dealflow_spans (node) VALUES (%s)", [("qualify_lead",)])
    assert held.hold("T", "cp-1", newer)
    with held.flushing("T"):  # what a checkpoint or a claim does before taking rows
        order.append("taken")
        assert held.take("T") == [newer]
    assert order == ["save started", "save done", "taken"]


def test_writes_for_a_checkpoint_still_held_ride_with_it() -> None:
    """LangGraph's executor may run a task's put_writes after the next checkpoint's put."""
    first: Batch = ("INSERT INTO checkpoints (id) VALUES (%s)", [("cp-1",)])
    second: Batch = ("INSERT INTO checkpoints (id) VALUES (%s)", [("cp-2",)])
    late: Batch = ("INSERT INTO checkpoint_writes (id) VALUES (%s)", [("cp-1",)])
    held = HeldWrites(lambda thread, batches: None, hold_seconds=60)
    held.hold_checkpoint("T", "cp-1", first)
    held.hold_checkpoint("T", "cp-2", second)
    assert held.hold("T", "cp-1", late)  # cp-1 is not the latest, but is still held
    assert held.take("T") == [first, second, late]  # saved together, in one transaction
    assert not held.hold("T", "cp-1", late)  # cp-1 went out: a write for it goes at once
    assert held.hold("T", "cp-2", ROW)  # the latest still holds

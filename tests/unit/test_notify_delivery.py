"""`deliver_due`: one notification at a time, each run bounded in time (issue 28)."""

from __future__ import annotations

from typing import Any

from dealflow.notify import deliver_due
from state.outbox import Pending


class FakeOutbox:
    """The outbox's delivery calls over a list, recording how each post went."""

    def __init__(self, count: int) -> None:
        self.due = [Pending(n, {"id": f"n-{n}"}, 0) for n in range(count)]
        self.settled: list[tuple[str, int]] = []
        self.takes: list[int] = []

    def take_due(self, limit: int = 50) -> list[Pending]:
        self.takes.append(limit)
        taken, self.due = self.due[:limit], self.due[limit:]
        return taken

    def sent(self, pending: Pending) -> None:
        self.settled.append(("sent", pending.id))

    def failed(self, pending: Pending, error: str) -> None:
        self.settled.append(("failed", pending.id))

    def skipped(self, pending: Pending, why: str) -> None:
        self.settled.append(("skipped", pending.id))


class SlowReceiver:
    """Takes 3 s (of a fake clock) per post; refuses the ids in `refuse`."""

    def __init__(self, refuse: tuple[str, ...] = ()) -> None:
        self.now = 0.0
        self.refuse = refuse

    def send(self, message: dict[str, Any]) -> None:
        self.now += 3
        if message["id"] in self.refuse:
            raise OSError("refused")

    def clock(self) -> float:
        return self.now


def test_a_run_stops_taking_posts_once_its_budget_is_spent() -> None:
    outbox, receiver = FakeOutbox(12), SlowReceiver(refuse=("n-1",))
    sent, failed = deliver_due(outbox, receiver, budget_seconds=10,  # type: ignore[arg-type]
                               clock=receiver.clock)
    assert (sent, failed) == (3, 1)  # posts start at 0, 3, 6 and 9 s; none at 12 s
    assert outbox.settled == [("sent", 0), ("failed", 1), ("sent", 2), ("sent", 3)]
    assert outbox.takes == [1, 1, 1, 1]  # one at a time: the other 8 were never taken
    assert len(outbox.due) == 8


def test_without_a_budget_or_a_notifier_every_due_one_is_settled_up_to_the_limit() -> None:
    outbox = FakeOutbox(5)
    assert deliver_due(outbox, SlowReceiver()) == (5, 0)  # type: ignore[arg-type]
    skipping = FakeOutbox(60)
    assert deliver_due(skipping, None, limit=50) == (0, 0)  # type: ignore[arg-type]
    assert [s for s, _ in skipping.settled] == ["skipped"] * 50 and len(skipping.due) == 10

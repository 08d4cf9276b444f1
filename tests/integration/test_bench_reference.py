"""The bench's reference runs the same deal to completion on InMemorySaver, with nothing durable."""

from __future__ import annotations

from typing import Any

from bench.reference import MemoryDeals
from bench.workloads import STEPS_PER_DEAL, STEPS_PER_SHORT_DEAL, WEAK, deal


def _threads(memory: MemoryDeals) -> set[str]:
    return {c.config["configurable"]["thread_id"] for c in memory.graph.checkpointer.list(None)}


def _shape(graph: Any, thread: str) -> list[tuple[Any, ...]]:
    """(source, step, next) of each checkpoint, oldest first."""
    history = graph.get_state_history({"configurable": {"thread_id": thread}})
    return [(s.metadata["source"], s.metadata["step"], s.next) for s in reversed(list(history))]


def test_the_reference_deal_takes_our_steps_and_saves_no_checkpoint(service: Any) -> None:
    ours = service.start(deal("OURS"))
    service.event(ours.thread_id, "signature.completed")
    memory = MemoryDeals(service)
    assert memory.full(lambda: deal("REF"))() > 0
    (thread,) = _threads(memory)
    assert memory.graph.get_state({"configurable": {"thread_id": thread}}).values["invoice"]
    shape = _shape(memory.graph, thread)
    assert shape == _shape(service.graph, ours.thread_id)
    # the super-steps bench.workloads counts: the nodes' (the input's step runs none)
    assert len([s for s in shape if s[0] == "loop"]) == STEPS_PER_DEAL + 1
    memory.short(lambda: deal("REFS", lead=WEAK))()
    (short,) = _threads(memory) - {thread}
    assert len([s for s in _shape(memory.graph, short) if s[0] == "loop"]) == \
        STEPS_PER_SHORT_DEAL + 1
    with service.pool.connection() as conn:
        row = conn.execute("SELECT count(*) AS n FROM checkpoints WHERE thread_id IN (%s, %s)",
                           (thread, short)).fetchone()
    assert row["n"] == 0

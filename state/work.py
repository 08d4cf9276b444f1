"""One task's unit of work: the rows it writes with its step's checkpoint.

The graph builder makes a `StepWork` for every task and hands it in (through
`StepRun` and the data layer's `work=` arguments). An audit entry, a span, the
registry's row of the deal and an effect's receipt are added to its `rows` by
those explicit calls; nothing is written yet. When the task ends, the builder
hands the work to `PendingWrites.end_task`: it is written with the step's
checkpoint (`state.pending.FLUSH`), or at once when the run's checkpointer is not
this process's `DealSaver`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from state.rows import Rows


@dataclass
class StepWork:
    """The rows of one task, for the step that runs from `checkpoint_id` of `thread_id`."""

    thread_id: str | None
    checkpoint_id: str | None
    rows: Rows = field(default_factory=Rows)

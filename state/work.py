"""One task's unit of work: the rows it writes with its step's checkpoint.

The graph builder makes a `StepWork` for every task and hands it in (through
`StepRun` and the data layer's `work=` arguments). An audit entry, a span, the
registry's row of the deal and an effect's receipt are added to it by those
explicit calls; nothing is written yet. When the task ends, the builder hands
the work to `PendingWrites.end_task`: it is written with the step's checkpoint
(one statement, `state.pending.FLUSH`), or at once when the run's checkpointer is
not this process's `DealSaver`. An act that must be durable before it returns (a
fact write, an effect's claim, a wait's opening) writes the work first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from state.rows import Row, Rows


@dataclass
class StepWork:
    """The rows of one task, for the step that runs from `checkpoint_id` of `thread_id`."""

    thread_id: str | None
    checkpoint_id: str | None
    rows: Rows = field(default_factory=Rows)

    def audit(self, row: Row) -> None:
        """Add an audit entry (`AuditTrail.row`)."""
        self.rows.audit.append(row)

    def span(self, row: Row) -> None:
        """Add a span (`SpanStore.row`)."""
        self.rows.spans.append(row)

    def deal(self, row: Row) -> None:
        """Add the registry's row of the deal (`DealRegistry.row`); the last one counts."""
        self.rows.deals.append(row)

    def receipt(self, row: Row) -> None:
        """Add an effect's receipt: `(idempotency_key, receipt)`."""
        self.rows.receipts.append(row)

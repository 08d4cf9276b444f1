"""Deterministic crash points for the crash-matrix tests (`DEALFLOW_CRASH_AT`).

`DEALFLOW_CRASH_AT="send_for_signature:after_effect"` kills this process with
SIGKILL at that point: `before_effect`, `after_effect` (the system was called,
the receipt is not recorded), `after_receipt` (recorded, not checkpointed),
`writes_held` (the step's task writes are handed to the checkpointer, which
holds them for the step's checkpoint: see `state.pending`) or
`after_checkpoint` (the checkpointer has the step's super-step: saved, or held
for the next step's first write when the run goes on: `state.saver.leads_on`).
One kill point belongs to the run, not a step: `run:input_held` (the run's input
checkpoint is handed to the checkpointer, which holds it for the first step's write).
Unset, it does nothing.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from state.saver import DealSaver

PHASES = ("before_effect", "after_effect", "after_receipt", "writes_held", "after_checkpoint")
INPUT_HELD = ("run", "input_held")  # the kill point of a run's input checkpoint


def parse_crash_point(spec: str) -> tuple[str, str]:
    """`(step, phase)` from `step:phase`, or ValueError."""
    step, sep, phase = spec.partition(":")
    if (step, phase) == INPUT_HELD:
        return INPUT_HELD
    if not sep or not step or phase not in PHASES:
        raise ValueError(f"crash point must be {':'.join(INPUT_HELD)} or step:phase with "
                         f"phase in {', '.join(PHASES)}")
    return step, phase


def crash_hook(spec: str | None) -> Callable[[str, str], None]:
    """A hook that SIGKILLs this process when `(step, phase)` matches `spec`."""
    if not spec:
        return lambda step, phase: None
    target = parse_crash_point(spec)

    def hook(step: str, phase: str) -> None:
        if (step, phase) == target:
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def crashing_checkpointer(saver: DealSaver, spec: str | None) -> DealSaver:
    """`saver`, made to SIGKILL the process once it holds or checkpoints the `spec` step.

    The `writes_held` and `after_checkpoint` kill points live here, in the
    checkpointer the crash tests use, so the normal run path pays nothing for
    them. Without a `spec` the saver is returned as it is.
    """
    if not spec:
        return saver
    hook = crash_hook(spec)
    put, put_writes = saver.put, saver.put_writes

    def put_writes_then_crash(config: Any, writes: Any, task_id: str,
                              task_path: str = "") -> None:
        put_writes(config, writes, task_id, task_path)
        for channel, value in writes:
            if channel == "completed_steps":
                for step in value:
                    hook(step, "writes_held")

    def put_then_crash(config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        saved = put(config, checkpoint, metadata, new_versions)
        if metadata.get("source") == "input":
            hook(*INPUT_HELD)
        for step in checkpoint.get("channel_values", {}).get("completed_steps", []):
            hook(step, "after_checkpoint")
        return saved

    saver.put = put_then_crash  # type: ignore[method-assign]
    saver.put_writes = put_writes_then_crash  # type: ignore[method-assign]
    return saver

"""Cancelling a deal: end its open wait, void its envelopes, leave it `cancelled`.

The path of an expiry (`dealflow.deadlines`), with the operator instead of the
clock. Under the thread's fenced lease (`Busy` while a process drives it):

1. The wait the thread stopped at is *claimed* for the cancellation in one
   statement, which also cancels the wait's scheduled deadlines; if a decision,
   an event or an expiry claimed it first, nothing happens and the operator is
   told what won (`Decided`), as a late reviewer is; whoever comes after the
   cancellation is told "the signature wait already ended with cancelled by …".
2. The wait's system of record does what the wait's expiry declares
   (`SystemCall` of its `expire` deadline: the signature wait's
   `void_envelope`, with the reason `cancelled`) on the wait's handle (the
   envelope), through the effect ledger, once; every other envelope of the deal
   still open at an e-sign system (`ESign.open_envelopes`) is voided the same
   way. The sandbox and DocuSign both void at the provider.
3. The thread ends: LangGraph's `bulk_update_state` clears the pending task (as
   `update_state(None, as_node=END)` does) and writes the outcome `cancelled`,
   so status, history and the registry all read `cancelled`, and no job,
   sweep or `recover` runs it on.

A cancellation interrupted between its steps (the e-sign system down: `VoidFailed`,
one line) is finished by cancelling again: the wait claimed for a cancellation
counts as this one's claim, and an envelope voided before is not voided twice.
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import END
from langgraph.types import StateSnapshot, StateUpdate

from agents.systems.base import ESign
from dealflow.api import DealService
from dealflow.console_actions import Done, audit_action
from dealflow.deadlines import checkpoint_of, current_wait, refusal
from dealflow.errors import DealflowError, Decided, NotWaiting
from dealflow.reports import deal_state_of, has_run, status_of
from graph.nodes import SUPERVISOR
from graph.wait_policy import SystemCall
from state.audit import Origin
from state.deal_state import DealState
from state.models import OPEN_STATUSES, Envelope
from state.registry import DealRow
from state.waits import Wait, WaitNotFound

CANCELLED = "cancelled"  # the outcome, the status and the key of the wait's resolution
CANCELLABLE = (*OPEN_STATUSES, "failed")
VOID = SystemCall("void_envelope", Envelope, args=(("reason", CANCELLED),))
"""How any other open envelope of the deal is voided (the e-sign system's own call)."""


class VoidFailed(DealflowError):
    """The e-sign system did not void an envelope; cancelling again finishes (HTTP 503)."""

    exit_code = 5


def cancel_deal(service: DealService, ref: str, operator: str, reason: str = "") -> Done:
    """Cancel the deal in `operator`'s name: its wait ended, its envelopes voided."""
    row = service.deal(ref)
    with service.holding(row.thread_id, wait=False):
        snapshot = service.snapshot(row.thread_id)
        if not has_run(snapshot):
            raise NotWaiting(f"deal {row.deal_id} has not started its first step yet; "
                             "try again in a moment")
        status = status_of(snapshot, service.workflow)
        if status not in CANCELLABLE:
            raise NotWaiting(f"deal {row.deal_id} is {status}: there is nothing to cancel")
        resolution = {CANCELLED: {"by": operator[:200], "reason": reason[:500]},
                      "event": f"cancelled by {operator[:200]}"}  # said to whoever comes late
        wait = _claim(service, row, snapshot, resolution, operator)
        origin = Origin(row.deal_id, agent="operator", step="cancel", thread_id=row.thread_id,
                        checkpoint_id=checkpoint_of(snapshot))
        try:
            voided = _void_all(service, origin, wait, deal_state_of(snapshot, service.workflow))
        except DealflowError:
            raise
        except Exception as exc:  # the provider failed: say so in one line; again finishes
            raise VoidFailed(f"deal {row.deal_id} was not cancelled: voiding its envelope "
                             f"failed ({str(exc).splitlines()[0][:200] if str(exc) else exc!r})"
                             f"; its wait is ended for the cancellation: cancel again to "
                             "finish") from exc
        service.graph.bulk_update_state(snapshot.config, [
            [StateUpdate(None, END)], [StateUpdate({"outcome": CANCELLED}, SUPERVISOR)]])
        service.record_status(row.thread_id, service.snapshot(row.thread_id))
        audit_action(service, row, operator, "cancel", reason,
                     {"was": status, "wait": wait.wait if wait else None, "voided": voided})
    said = f"; voided {', '.join(voided)}" if voided else ""
    return Done(f"deal {row.deal_id} cancelled (it was {status}){said}")


def _claim(service: DealService, row: DealRow, snapshot: StateSnapshot,
           resolution: dict[str, Any], operator: str) -> Wait | None:
    """Claim the wait the thread stopped at, if any; `Decided` if something else won."""
    found = current_wait(snapshot)
    if found is None:
        return None
    node, key = found
    origin = Origin(row.deal_id, agent=service.workflow.agent_of(node), step=node,
                    thread_id=row.thread_id, checkpoint_id=checkpoint_of(snapshot))
    try:
        claim = service.data.waits.claim(origin, key, resolution, operator[:200])
    except WaitNotFound:
        return None  # opened before waits were stored: nothing to claim
    if not claim.won and CANCELLED not in (claim.wait.resolution or {}):
        raise Decided(f"{refusal(row.thread_id, claim.wait)}; the deal was not cancelled")
    return claim.wait


def _void_all(service: DealService, origin: Origin, wait: Wait | None,
              state: DealState) -> list[str]:
    """Void the wait's handle as its expiry would, then every other open envelope."""
    voided: list[str] = []
    policy = service.workflow.wait_policy(wait.node) if wait else None
    spec = service.workflow.declared_step(wait.node) if wait else None
    handle = spec.handle_of(state) if spec is not None else None
    call = next((d.call for d in policy.deadlines if d.action == "expire" and d.call),
                None) if policy else None
    if policy and policy.system and spec and handle and call:
        system = service.systems[policy.system]
        _perform(service, origin, policy.system, system, call, {spec.handle_field: handle})
        voided.append(str(handle))
    for name in service.systems.names:
        esign = service.systems[name]
        if isinstance(esign, ESign):
            for envelope_id in esign.open_envelopes(origin.deal_id):
                _perform(service, origin, name, esign, VOID, {"envelope_id": envelope_id})
                voided.append(envelope_id)
    return list(dict.fromkeys(voided))


def _perform(service: DealService, origin: Origin, system_name: str, system: Any,
             call: SystemCall, target: dict[str, Any]) -> None:
    """Make the declared call on `target` with the reason `cancelled`, once (the ledger)."""
    args = dict(call.args)
    if "reason" in args:  # the expiry's call says why: here, cancelled
        args["reason"] = CANCELLED
    method, lookup = getattr(system, call.method), getattr(system, call.lookup, None)
    (handle,) = target.values()
    service.data.effects.perform(
        origin, f"{system_name}.{call.method}", {**target, **args}, call.receipt,
        lambda key: method(handle, key=key, **args), lookup if callable(lookup) else None)

"""What happens when an agent still fails after LangGraph's `RetryPolicy`.

The node's `error_handler` records the failure in the state and hands control
back to the supervisor, which routes the thread to human review.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
from langgraph.errors import NodeError
from langgraph.runtime import Runtime
from langgraph.types import Command, RetryPolicy

from agents.systems import SystemUnavailable
from agents.systems.rate_limits import RateLimited
from graph.nodes import SUPERVISOR
from graph.runtime import ContextResolver, DealContext, once_key, origin_of
from graph.workflow import Workflow
from state.config import Settings
from state.deal_state import DealState
from state.effects import EffectBusy
from state.models import Failure
from state.transactions import DealOwnedElsewhere, LeaseLost
from state.work import StepWork

TRANSIENT_ERRORS: tuple[type[Exception], ...] = (SystemUnavailable, psycopg.OperationalError)
# Not a step failing: this process must stop driving the thread (another owns it).
NOT_OURS: tuple[type[Exception], ...] = (DealOwnedElsewhere, LeaseLost, EffectBusy)
# Not a step failing either: a provider's rate limit holds the step back, and the worker
# continues the thread later (`agents.systems.rate_limits`); the run stops here.
NOT_FAILURES: tuple[type[Exception], ...] = (*NOT_OURS, RateLimited)
FailureHandler = Callable[[DealState, NodeError, Runtime[DealContext], StepWork],
                          Command[str]]
# LangGraph's runner remembers the exceptions its error handlers took by `id()` and
# does not re-raise an exception whose id it remembers. Once a handled exception is
# freed, a later one (the `GraphInterrupt` of the review it led to) can get its id, and
# the interrupt was then swallowed: the run went on, and the thread read "running"
# instead of "waiting_review" (seen under load: `tests/integration/test_fact_store.py`).
# Keeping the handled exceptions alive keeps their ids unique.
_HANDLED: deque[BaseException] = deque(maxlen=256)


def retry_policy(settings: Settings) -> RetryPolicy:
    """Retries with exponential backoff for outages of systems and the database."""
    return RetryPolicy(
        max_attempts=settings.max_attempts,
        initial_interval=settings.retry_initial_interval,
        backoff_factor=settings.retry_backoff_factor,
        max_interval=settings.retry_max_interval,
        jitter=settings.retry_jitter,
        retry_on=TRANSIENT_ERRORS,
    )


def make_failure_handler(workflow: Workflow, contexts: ContextResolver) -> FailureHandler:
    """The error handler of `workflow`'s nodes: record the failure, let the supervisor route."""
    def escalate_failure(state: DealState, error: NodeError, runtime: Runtime[DealContext],
                         work: StepWork) -> Command[str]:
        """Record the failed step with its error and hand it to the supervisor (review)."""
        context = contexts(runtime)
        exc = error.error
        if isinstance(exc, NOT_FAILURES):
            raise exc  # not a step failing: this process must not drive the thread (now)
        _HANDLED.append(exc)
        attempts = context.settings.max_attempts if isinstance(exc, TRANSIENT_ERRORS) else 1
        failure = Failure(step=error.node, error_type=type(exc).__name__, error=str(exc)[:500],
                          system=getattr(exc, "system", None), attempts=attempts,
                          failed_at=datetime.now(UTC))
        context.data.audit.append(
            origin_of(runtime, state.deal.deal_id, workflow.agent_of(error.node), error.node),
            "step.failed", reason=failure.error, detail=failure.model_dump(mode="json"),
            dedupe_key=once_key(runtime, "failed"), work=work,
        )
        return Command(update={"failures": {error.node: failure}}, goto=SUPERVISOR)

    return escalate_failure

"""Observability: a span for every node attempt, from the graph's own run; LangSmith per deal.

The builder wraps every node with `recorded`, which makes the task's unit of
work (`state.work.StepWork`) and hands it to the node: each attempt (retries
included) adds a row of `dealflow_spans` to it (`ok`, `error`, or `waiting` for
an interrupt), and when the attempt ends the work goes to the step's checkpoint
(`PendingWrites.end_task`). The node's LangSmith run gets the deal's ids as
metadata. It happens inside the graph, so a deal driven from plain LangGraph, a
notebook, LangGraph Server or the service is traced the same way. `langsmith_client`
builds the LangSmith client with redaction of secrets.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from langgraph.errors import GraphBubbleUp, NodeError
from langgraph.runtime import Runtime
from langgraph.types import Command
from langsmith.run_helpers import get_current_run_tree

from agents.systems.rate_limits import RateLimited
from graph.nodes import ERROR_HANDLER_PREFIX
from graph.runtime import ContextResolver, DealContext
from graph.workflow import Workflow
from state.config import Settings
from state.deal_state import DealState
from state.models import LLMUsage
from state.spans import Span
from state.work import StepWork

log = logging.getLogger(__name__)
Node = Callable[[DealState, Runtime[DealContext], StepWork], Any]
Handler = Callable[[DealState, NodeError, Runtime[DealContext], StepWork], Any]


def recorded(name: str, node: Node, workflow: Workflow, contexts: ContextResolver
             ) -> Callable[[DealState, Runtime[DealContext]], Any]:
    """`node`, handed its task's unit of work, recording a span per attempt."""
    def traced_node(state: DealState, runtime: Runtime[DealContext]) -> Any:
        with task_work(runtime, contexts) as work, \
                node_span(name, state, runtime, workflow, contexts, work) as finish:
            result = node(state, runtime, work)
            finish(result)
            return result

    traced_node.__name__, traced_node.__doc__ = name, node.__doc__
    return traced_node


def recorded_handler(handler: Handler, workflow: Workflow, contexts: ContextResolver
                     ) -> Callable[[DealState, NodeError, Runtime[DealContext]], Any]:
    """An error handler, recorded as the span of `__error_handler__<step>`."""
    def traced_handler(state: DealState, error: NodeError, runtime: Runtime[DealContext]) -> Any:
        name = ERROR_HANDLER_PREFIX + error.node
        with task_work(runtime, contexts) as work, \
                node_span(name, state, runtime, workflow, contexts, work) as finish:
            result = handler(state, error, runtime, work)
            finish(result)
            return result

    traced_handler.__doc__ = handler.__doc__
    return traced_handler


@contextmanager
def task_work(runtime: Runtime[DealContext], contexts: ContextResolver) -> Iterator[StepWork]:
    """The task's unit of work; when the task ends (however), it goes to the step's checkpoint."""
    info = runtime.execution_info
    work = StepWork(getattr(info, "thread_id", None), getattr(info, "checkpoint_id", None))
    pending = contexts(runtime).data.pending
    try:
        yield work
    except BaseException:
        try:
            pending.end_task(work)  # the spans of an error or an interrupt are kept too
        except Exception as exc:  # the task's own exception is the one to raise
            log.warning("could not write the work of a failed task: %s", exc)
        raise
    pending.end_task(work)


@contextmanager
def node_span(name: str, state: DealState, runtime: Runtime[DealContext], workflow: Workflow,
              contexts: ContextResolver, work: StepWork | None = None
              ) -> Iterator[Callable[[Any], None]]:
    """Time the block; record it as one span (a thread-less run records nothing)."""
    info = runtime.execution_info
    thread_id = getattr(info, "thread_id", None)
    run = get_current_run_tree()
    if run is not None:
        run.metadata.setdefault("deal_id", state.deal.deal_id)
        run.metadata.setdefault("thread_id", thread_id)
    started, t0 = datetime.now(UTC), time.perf_counter()
    usage = [LLMUsage()]

    def finish(result: Any) -> None:
        update = result.update if isinstance(result, Command) else result
        if isinstance(update, dict) and isinstance(update.get("llm_usage"), LLMUsage):
            usage[0] = update["llm_usage"]

    def record(status: str, error: str | None) -> None:
        if not thread_id:
            return
        try:
            contexts(runtime).data.spans.record(Span(
                deal_id=state.deal.deal_id, thread_id=thread_id, node=name,
                agent=workflow.agent_of(name), system=workflow.system_of(name),
                task=getattr(info, "task_id", None), attempt=getattr(info, "node_attempt", 1),
                started_at=started, duration_ms=(time.perf_counter() - t0) * 1000,
                status=status, error=error, llm_calls=usage[0].calls,
                prompt_tokens=usage[0].prompt_tokens,
                completion_tokens=usage[0].completion_tokens), work)
        except Exception as exc:  # spans are observability; a failed write must not fail it
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            log.warning("could not record span of %s: %s", name, reason)

    try:
        yield finish
    except GraphBubbleUp:
        record("waiting", None)
        raise
    except RateLimited as exc:  # held back, its job deferred: not a failed attempt
        record("deferred", f"RateLimited: {exc}"[:500])
        raise
    except Exception as exc:
        record("error", f"{type(exc).__name__}: {exc}"[:500])
        raise
    record("ok", None)


SECRET_PATTERNS = (
    r"sk-[A-Za-z0-9_\-]{8,}",
    r"lsv2_[A-Za-z0-9_\-]{8,}",
    r"(?i)bearer\s+[A-Za-z0-9._\-]{8,}",
    r"(?i)(?:api[_-]?key|token|secret|password)[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9._\-]{6,}",
)


def secret_patterns(settings: Settings) -> list[str]:
    """Regexes of what must never leave the process: key shapes and configured secrets."""
    patterns = list(SECRET_PATTERNS)
    if settings.openai_api_key is not None and settings.openai_api_key.get_secret_value():
        patterns.append(re.escape(settings.openai_api_key.get_secret_value()))
    return patterns


def langsmith_client(settings: Settings) -> Any:
    """A LangSmith client (standard LANGSMITH_* variables) that redacts secrets."""
    from langsmith import Client
    from langsmith.anonymizer import create_anonymizer

    anonymizer = create_anonymizer(
        [{"pattern": re.compile(p), "replace": "[redacted]"} for p in secret_patterns(settings)])
    return Client(anonymizer=anonymizer)


@contextmanager
def traced(settings: Settings, metadata: dict[str, Any]) -> Iterator[None]:
    """Trace the block to LangSmith when the LANGSMITH_* variables enable it.

    Every run inside gets `metadata` (deal and thread ids, supervisor mode), and
    the client redacts secrets; runs are flushed before the block returns, so a
    short-lived CLI process loses none. With tracing off, nothing is sent.
    """
    from langsmith import utils as ls_utils
    from langsmith.run_helpers import tracing_context

    if not ls_utils.tracing_is_enabled():
        yield
        return
    client = langsmith_client(settings)
    try:
        with tracing_context(client=client, metadata=metadata, enabled=True):
            yield
    finally:
        client.flush()

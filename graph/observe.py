"""Observability: local spans of every node attempt, and LangSmith tracing per deal.

`SpanRecorder` is a LangChain callback handler: LangGraph reports each node
attempt (retries included) as a chain run, and each interrupt as a
`GraphInterrupt` error; the recorder turns them into rows of `dealflow_spans`.
`langsmith_client` builds the LangSmith client with redaction of secrets.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.outputs import LLMResult
from langgraph.errors import GraphBubbleUp

from graph.workflow import Workflow
from state.config import Settings
from state.spans import Span, SpanStore

log = logging.getLogger(__name__)


class SpanRecorder(BaseCallbackHandler):
    """Record one span per node attempt of one thread (never breaks the run)."""

    raise_error = False

    def __init__(self, spans: SpanStore, deal_id: str, thread_id: str,
                 workflow: Workflow) -> None:
        """Write spans of `thread_id` (deal `deal_id`) to `spans`; agents from `workflow`."""
        self._spans, self._deal_id, self._thread_id = spans, deal_id, thread_id
        self._workflow = workflow
        self._open: dict[UUID, dict[str, Any]] = {}
        self._parent: dict[UUID, UUID] = {}
        self._attempts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def on_chain_start(self, serialized: dict[str, Any] | None, inputs: Any, *, run_id: UUID,
                       parent_run_id: UUID | None = None, metadata: dict[str, Any] | None = None,
                       **kwargs: Any) -> None:
        """Open a span when a node's own run starts."""
        if parent_run_id is not None:
            self._parent[run_id] = parent_run_id
        node = (metadata or {}).get("langgraph_node")
        if node is None or kwargs.get("name") != node:
            return
        task = (metadata or {}).get("langgraph_checkpoint_ns")
        with self._lock:
            self._attempts[task or str(run_id)] += 1
            self._open[run_id] = {
                "node": node, "task": task, "attempt": self._attempts[task or str(run_id)],
                "started_at": datetime.now(UTC), "t0": time.perf_counter(),
                "llm_calls": 0, "prompt_tokens": 0, "completion_tokens": 0}

    def on_chat_model_start(self, serialized: dict[str, Any], messages: Any, *, run_id: UUID,
                            parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        """Remember where a model call sits, to charge its usage to its node."""
        if parent_run_id is not None:
            self._parent[run_id] = parent_run_id

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        """Add a model call's tokens to the node span it ran in."""
        usage: dict[str, Any] = {}
        for generation in (g for gens in response.generations for g in gens):
            usage = dict(getattr(getattr(generation, "message", None), "usage_metadata", None)
                         or {})
        with self._lock:
            span = self._span_above(run_id)
            if span is not None:
                span["llm_calls"] += 1
                span["prompt_tokens"] += int(usage.get("input_tokens", 0))
                span["completion_tokens"] += int(usage.get("output_tokens", 0))

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Close a node span as `ok`."""
        self._close(run_id, "ok", None)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Close a node span as `waiting` (an interrupt) or `error`."""
        if isinstance(error, GraphBubbleUp):
            self._close(run_id, "waiting", None)
        else:
            self._close(run_id, "error", f"{type(error).__name__}: {error}"[:500])

    def _span_above(self, run_id: UUID) -> dict[str, Any] | None:
        seen = 0
        current: UUID | None = run_id
        while current is not None and seen < 50:
            if current in self._open:
                return self._open[current]
            current, seen = self._parent.get(current), seen + 1
        return None

    def _close(self, run_id: UUID, status: str, error: str | None) -> None:
        with self._lock:
            span = self._open.pop(run_id, None)
        if span is None:
            return
        agent = self._workflow.agent_of(span["node"])
        system = self._workflow.system_of(span["node"])
        try:
            self._spans.record(Span(
                deal_id=self._deal_id, thread_id=self._thread_id, node=span["node"],
                agent=agent, system=system, task=span["task"], attempt=span["attempt"],
                started_at=span["started_at"],
                duration_ms=(time.perf_counter() - span["t0"]) * 1000, status=status,
                error=error, llm_calls=span["llm_calls"], prompt_tokens=span["prompt_tokens"],
                completion_tokens=span["completion_tokens"]))
        except Exception:  # spans are observability; a failed write must not fail the deal
            log.exception("could not record span of %s", span["node"])


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

"""The deal graph's runtime context, and the helpers that hand it to the nodes.

`DealContext` is the graph's LangGraph `context_schema`: the settings, the
systems of record and the shared data layer. It must be supplied:
`graph.invoke(..., context=DealContext.on(pool, settings, saver=saver))`. A run without it
fails with a clear error, except on LangGraph Server, whose entry module
(`graph/graph.py`) hands the builder a context built once from the environment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from langgraph.runtime import Runtime
from langsmith.run_helpers import get_current_run_tree

from agents.systems import Systems
from agents.systems.configured import build_systems
from agents.systems.rate_limits import RateLimiter
from state.audit import Origin
from state.config import ConfigError, Settings
from state.crash import crash_hook
from state.data import DataLayer
from state.database import Pool
from state.leases import Leases
from state.saver import DealSaver


class MissingContext(RuntimeError):
    """The graph was invoked without its `DealContext`."""


@dataclass(frozen=True)
class DealContext:
    """Run-scoped configuration and dependencies of the deal graph."""

    settings: Settings
    systems: Systems
    data: DataLayer
    # in a worker's job: an effect no rate-limit slot is due for is held back (its job
    # continued later, `dealflow.service.rate_deferral`) instead of waited for
    defer_rate_limits: bool = False

    def rate_limit_of(self, system: str | None) -> RateLimiter | None:
        """`system`'s rate limit to hold an effect back by (`defer_rate_limits`), else None."""
        if not self.defer_rate_limits or system is None:
            return None
        return self.systems.rate_limits.get(system)

    @classmethod
    def on(cls, pool: Pool, settings: Settings, systems: Systems | None = None, *,
           saver: DealSaver | None = None, leases: Leases | None = None) -> DealContext:
        """The context on `pool`: the systems `settings` name (else the sandbox), data layer.

        `saver`: the run's checkpointer (`make_checkpointer`): each step's unit of
        work is then written with its checkpoint, fenced by the saver's leases.
        Without it, `leases` are the thread leases this process holds (default:
        none), and each task writes its own work when it ends.
        """
        systems = systems or build_systems(pool, settings)
        unknown = sorted(set(settings.sandbox_outage) - set(systems.names))
        if unknown:
            raise ConfigError(f"DEALFLOW_SANDBOX_OUTAGE: unknown system {unknown[0]!r} "
                              f"(known: {', '.join(systems.names)})")
        return cls(settings=settings, systems=systems,
                   data=DataLayer.on(pool, crash_hook(settings.crash_at),
                                     pending=saver.pending if saver else None, leases=leases))



ContextSource = Callable[[], DealContext]


@dataclass(frozen=True)
class ContextResolver:
    """How every node finds its context: the run's, else the builder's fallback, else an error."""

    fallback: ContextSource | None = None

    def __call__(self, runtime: Runtime[DealContext] | None) -> DealContext:
        """The run's `DealContext`."""
        context = runtime.context if runtime is not None else None
        if isinstance(context, DealContext):
            return context
        if self.fallback is not None:
            return self.fallback()
        raise MissingContext(
            "the deal graph needs its runtime context: pass "
            "context=DealContext.on(pool, settings, saver=saver) to invoke/stream "
            "(see the README)")


def origin_of(runtime: Runtime[DealContext] | None, deal_id: str, agent: str,
              step: str) -> Origin:
    """Who is acting, where: agent and step, with the thread and checkpoint if known.

    When LangSmith tracing is on, the node's run gets the checkpoint id as metadata.
    """
    info = getattr(runtime, "execution_info", None)
    origin = Origin(deal_id=deal_id, agent=agent, step=step,
                    thread_id=getattr(info, "thread_id", None),
                    checkpoint_id=getattr(info, "checkpoint_id", None))
    run = get_current_run_tree()
    if run is not None and origin.checkpoint_id:
        run.metadata.setdefault("checkpoint_id", origin.checkpoint_id)
    return origin


def once_key(runtime: Runtime[DealContext] | None, action: str) -> str | None:
    """A dedupe key for an audit entry made by this task (a re-run of it adds none)."""
    info = getattr(runtime, "execution_info", None)
    if info is None or not getattr(info, "thread_id", None):
        return None
    return f"{info.thread_id}:{info.task_id}:{action}"

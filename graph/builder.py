"""Build the deal `StateGraph` from the workflow declaration."""

from __future__ import annotations

from langgraph.graph import END, START, StateGraph

from agents.context import DealContext
from graph.failures import escalate_failure, retry_policy
from graph.review import human_review
from graph.router import REVIEW_NODE, SUPERVISOR_NODE, supervisor
from graph.workflow import STEPS
from state.config import Settings
from state.deal_state import DealState


def build_graph(settings: Settings | None = None) -> StateGraph[DealState, DealContext]:
    """The uncompiled deal graph; compile it with your own checkpointer.

    `settings` fixes the retry policy (attempts, backoff); everything else is read
    at run time from the `DealContext` passed to `invoke`/`stream`.
    """
    settings = settings or Settings.from_env()
    builder = StateGraph(DealState, context_schema=DealContext)
    builder.add_node(
        SUPERVISOR_NODE, supervisor, error_handler=escalate_failure,
        destinations=(*(spec.name for spec in STEPS), REVIEW_NODE, END),
    )
    builder.add_edge(START, SUPERVISOR_NODE)
    retry = retry_policy(settings)
    for spec in STEPS:
        if spec.kind == "agent":
            builder.add_node(
                spec.name, spec.node, retry_policy=retry, error_handler=escalate_failure,
                metadata={"agent": spec.agent, "system": spec.system},
            )
        else:
            builder.add_node(spec.name, spec.node, metadata={"agent": spec.agent})
        builder.add_edge(spec.name, SUPERVISOR_NODE)
    builder.add_node(REVIEW_NODE, human_review, metadata={"agent": "human"})
    builder.add_edge(REVIEW_NODE, SUPERVISOR_NODE)
    return builder

"""Build the deal `StateGraph` from the workflow declaration, handing each node what it needs.

Every step's node is wrapped so it receives a ready `StepRun` (its origin, its
declared system of record, the data layer, the settings) and returns only its
output; the wrapper turns that into the state update. The graph's own nodes
(supervisor, review, failure handler) get the workflow and the way to find the
runtime context from here too. Nothing is looked up from a global.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from agents.step_run import StepRun
from graph.failures import make_failure_handler, retry_policy
from graph.nodes import HUMAN_REVIEW, SUPERVISOR
from graph.observe import recorded, recorded_handler
from graph.review import make_human_review
from graph.runtime import ContextResolver, ContextSource, DealContext, origin_of
from graph.supervisor import make_supervisor
from graph.wait_policy import WaitPolicy
from graph.waiting import WaitRun, wait_key_of
from graph.workflow import DEFAULT_WORKFLOW, StepSpec, Workflow
from state.config import Settings
from state.deal_state import DealState
from state.work import StepWork

StepNode = Callable[[DealState, Runtime[DealContext], StepWork], dict[str, Any]]


def build_graph(settings: Settings | None = None, *, workflow: Workflow = DEFAULT_WORKFLOW,
                fallback_context: ContextSource | None = None
                ) -> StateGraph[DealState, DealContext]:
    """The uncompiled deal graph of `workflow`; compile it with your own checkpointer.

    `settings` fixes the retry policy (attempts, backoff); everything else comes
    at run time from the `DealContext` passed to `invoke`/`stream`, which is
    required unless `fallback_context` supplies one (LangGraph Server only: the
    graph then declares no context schema, so the server makes no context of its own).
    """
    settings = settings or Settings.from_env()
    contexts = ContextResolver(fallback_context)
    schema = workflow.state_schema
    on_failure = recorded_handler(make_failure_handler(workflow, contexts), workflow, contexts)

    def traced(name: str, node: Any) -> Any:
        return recorded(name, node, workflow, contexts)

    builder = StateGraph(schema, context_schema=None if fallback_context else DealContext)
    add: Any = builder.add_node  # every node takes the workflow's schema, not its own hint
    add(
        SUPERVISOR, traced(SUPERVISOR, make_supervisor(workflow, contexts)), input_schema=schema,
        error_handler=on_failure,
        destinations=(*(spec.name for spec in workflow.steps), HUMAN_REVIEW, END),
    )
    builder.add_edge(START, SUPERVISOR)
    retry = retry_policy(settings)
    # a renamed step keeps a node under its old name, where deals in flight may wait
    for name, spec in [*((s.name, s) for s in workflow.steps),
                       *((old, workflow.step(new)) for old, new in workflow.renamed.items())]:
        metadata = {"agent": spec.agent, "system": spec.system}
        node = traced(name, step_node(spec, contexts, workflow.wait_policy(spec.name)))
        if spec.kind == "agent":
            add(name, node, input_schema=schema, retry_policy=retry,
                error_handler=on_failure, metadata=metadata)
        else:
            add(name, node, input_schema=schema, metadata=metadata)
        builder.add_edge(name, SUPERVISOR)
    review = make_human_review(contexts, workflow.wait_policy(HUMAN_REVIEW))
    add(HUMAN_REVIEW, traced(HUMAN_REVIEW, review), input_schema=schema,
        metadata={"agent": workflow.agent_of(HUMAN_REVIEW)})
    builder.add_edge(HUMAN_REVIEW, SUPERVISOR)
    return builder


def step_node(spec: StepSpec, contexts: ContextResolver,
              wait_policy: WaitPolicy | None = None) -> StepNode:
    """The graph node of a declared step: hand it its `StepRun`, store its output.

    The run carries the task's unit of work (`work`, from `graph.observe`); an
    event step's run carries its `WaitRun` (with `wait_policy`'s deadlines).
    """
    def node(state: DealState, runtime: Runtime[DealContext], work: StepWork) -> dict[str, Any]:
        context = contexts(runtime)
        origin = origin_of(runtime, state.deal.deal_id, spec.agent, spec.name)
        wait = WaitRun(wait_policy, origin, wait_key_of(runtime), context.data,
                       context.settings, work) if spec.kind == "event" else None
        run = StepRun(origin=origin, data=context.data, settings=context.settings, work=work,
                      system_of_record=context.systems[spec.system] if spec.system else None,
                      wait=wait, rate_limit=context.rate_limit_of(spec.system))
        output = spec.node(state, run)
        return {spec.output: output, "completed_steps": [spec.name],
                "effect_keys": dict.fromkeys(run.used_keys, spec.name)}

    node.__name__ = spec.name
    node.__doc__ = spec.description
    return node

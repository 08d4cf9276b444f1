"""The LLM supervisor (`llm` and `hybrid` modes): a tool-calling model chooses, the guard decides.

Facts are not choices: an ended deal, a failed step (review), the wait for the
signer are taken from the rules without asking the model. In `hybrid` mode, so
is any moment where the rules allow exactly one next step. Otherwise the model
is asked, and every tool call it makes passes the guard (`graph.guard`) first.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage, ToolMessage
from langgraph.graph import END
from langgraph.runtime import Runtime
from langgraph.types import Command

from agents import models
from agents.context import DealContext, context_of, data_for, origin_of
from graph import workflow
from graph.guard import Verdict, check_turn
from graph.prompts import system_prompt
from graph.router import REVIEW_NODE, Route, decide
from graph.signature import STEP as SIGNATURE_STEP
from graph.tools import openai_tools
from state.config import Settings
from state.deal_state import DealState
from state.models import Escalation, LLMUsage

NUDGE = ("The deal is not finished. Call the tool(s) for the next step(s) the rules allow, or "
         "request_human_review if a person must decide.")


def facts_message(state: DealState) -> HumanMessage:
    """The deal's current facts for the model (data, never instructions)."""
    facts = state.model_dump(mode="json", include={
        "deal", "qualification", "project", "envelope", "signature", "invoice", "reviews"})
    facts["completed_steps"] = state.completed_steps
    if state.contract:
        facts["contract"] = {"contract_id": state.contract.contract_id}
    return HumanMessage(f"Current deal state (JSON data):\n{json.dumps(facts, default=str)}")


def tool_results(state: DealState) -> list[ToolMessage]:
    """Answers to the tool calls that ran since the model last spoke."""
    answers = []
    for node, call_id in state.pending_tool_calls.items():
        if node in state.failures:
            text = f"FAILED after retries: {state.failures[node].error}"
        elif node == REVIEW_NODE:
            last = state.reviews[-1] if state.reviews else None
            text = f"reviewer decided: {last.decision} ({last.comment})" if last else "pending"
        else:
            output = getattr(state, workflow.step(node).output)
            text = f"done: {json.dumps(_brief(output), default=str)}"
        answers.append(ToolMessage(content=text, tool_call_id=call_id))
    return answers


def _brief(output: Any) -> Any:
    data = output.model_dump(mode="json") if hasattr(output, "model_dump") else output
    if isinstance(data, dict):
        data.pop("text", None)
    return data


def _forced(state: DealState, route: Route, mode: str) -> bool:
    if state.failures or route.goto == (SIGNATURE_STEP,):
        return True
    return mode == "hybrid" and len(route.goto) == 1


def llm_supervise(state: DealState, runtime: Runtime[DealContext], mode: str) -> Command[str]:
    """One supervisor visit in `llm` or `hybrid` mode."""
    settings = context_of(runtime).settings
    route = decide(state, settings)
    answered = tool_results(state)
    base: dict[str, Any] = {"supervisor_messages": answered,
                            "pending_tool_calls": dict.fromkeys(state.pending_tool_calls)}
    if route.outcome is not None:
        summary, usage, said = _summary(state, settings, route, answered, mode)
        return Command(goto=END, update={**base, "supervisor_messages": [*answered, *said],
                                         "outcome": route.outcome, "llm_summary": summary,
                                         "llm_usage": usage})
    if _forced(state, route, mode):
        return Command(goto=list(route.goto), update=base)
    return _ask_model(state, runtime, settings, answered, base)


def _ask_model(state: DealState, runtime: Runtime[DealContext], settings: Settings,
               answered: list[ToolMessage], base: dict[str, Any]) -> Command[str]:
    model = models.build_chat_model(settings).bind_tools(openai_tools())
    history: list[AnyMessage] = [SystemMessage(system_prompt(settings)),
                                 *state.supervisor_messages]
    said: list[AnyMessage] = [*answered, facts_message(state)]
    usage, refused = LLMUsage(), state.llm_refused_turns
    while True:
        spent = state.llm_usage + usage
        if spent.cost_usd >= settings.llm_budget_usd:
            return _escalate(base, said, usage, f"LLM budget of {settings.llm_budget_usd} USD "
                             f"reached ({spent.cost_usd} USD spent)", "budget")
        if spent.calls >= settings.llm_max_turns:
            return _escalate(base, said, usage, f"{spent.calls} model turns without finishing "
                             f"(limit {settings.llm_max_turns})", "guard")
        answer = model.invoke([*history, *said])
        assert isinstance(answer, AIMessage)
        usage = usage + models.usage_of(answer, settings)
        said.append(answer)
        verdicts = check_turn(answer.tool_calls, state, settings)
        _audit_turn(runtime, state, verdicts)
        said.extend(ToolMessage(content=f"REFUSED: {v.reason}", tool_call_id=v.call_id)
                    for v in verdicts if not v.allowed)
        allowed = [v for v in verdicts if v.allowed]
        if allowed:
            return _run(state, settings, base, said, usage, allowed)
        refused += 1
        if not answer.tool_calls:
            said.append(HumanMessage(NUDGE))
        if refused >= settings.llm_max_refused_turns:
            return _escalate(base, said, usage, f"{refused} model turns in a row were refused "
                             "by the workflow rules", "guard")


def _run(state: DealState, settings: Settings, base: dict[str, Any], said: list[AnyMessage],
         usage: LLMUsage, allowed: list[Verdict]) -> Command[str]:
    update = {**base, "supervisor_messages": said, "llm_usage": usage, "llm_refused_turns": 0,
              "pending_tool_calls": {**base["pending_tool_calls"],
                                     **{v.node: v.call_id for v in allowed if v.node}}}
    nodes = [v.node for v in allowed if v.node]
    if nodes == [REVIEW_NODE] and not workflow.needs_approval(state, settings):
        update["escalation"] = Escalation(reason=allowed[0].reason, requested_by="model")
    return Command(goto=nodes, update=update)


def _escalate(base: dict[str, Any], said: list[AnyMessage], usage: LLMUsage, reason: str,
              by: Literal["model", "guard", "budget"]) -> Command[str]:
    history = tuple(_line(m) for m in said[-8:])
    return Command(goto=REVIEW_NODE, update={
        **base, "supervisor_messages": said, "llm_usage": usage, "llm_refused_turns": 0,
        "escalation": Escalation(reason=reason, requested_by=by, history=history)})


def _line(message: AnyMessage) -> str:
    calls = getattr(message, "tool_calls", None)
    if calls:
        return f"{message.type}: " + ", ".join(f"{c['name']}({c['args']})" for c in calls)
    return f"{message.type}: {str(message.content)[:300]}"


def _summary(state: DealState, settings: Settings, route: Route, answered: list[ToolMessage],
             mode: str) -> tuple[str, LLMUsage, list[AnyMessage]]:
    plain = (f"Deal {state.deal.deal_id} for {state.deal.client} ended {route.outcome} after "
             f"{', '.join(state.completed_steps) or 'no steps'}.")
    spent = state.llm_usage
    if mode != "llm" or spent.cost_usd >= settings.llm_budget_usd or spent.calls == 0:
        return plain, LLMUsage(), []
    closing = HumanMessage(f"The deal has ended: {route.outcome}. Summarize it in two sentences.")
    answer = models.build_chat_model(settings).bind_tools(openai_tools()).invoke(
        [SystemMessage(system_prompt(settings)), *state.supervisor_messages, *answered,
         facts_message(state), closing])
    assert isinstance(answer, AIMessage)
    text = answer.content if isinstance(answer.content, str) and answer.content.strip() else plain
    return text, models.usage_of(answer, settings), [closing, AIMessage(content=text)]


def _audit_turn(runtime: Runtime[DealContext], state: DealState, verdicts: list[Verdict]) -> None:
    audit = data_for(runtime).audit
    origin = origin_of(runtime, state.deal.deal_id, "supervisor", "supervisor")
    for verdict in verdicts:
        audit.append(origin, "guard.allowed" if verdict.allowed else "guard.refused",
                     reason=verdict.reason, detail={"tool": verdict.tool,
                                                    "call_id": verdict.call_id})

"""The LLM supervisor (`llm` and `hybrid` modes): a tool-calling model chooses, the guard decides.

Facts are not choices: an ended deal, a failed step (review), a wait for an
outside event are taken from the rules without asking the model. In `hybrid`
mode, so is any moment where the rules allow exactly one next step. Otherwise
the model is asked, and every tool call it makes passes the guard
(`graph.guard`) first. Either way the answer is a `Decision`, as in rules mode.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage, ToolMessage

from agents import chat_model
from graph.decision import Decision
from graph.guard import Verdict, check_turn
from graph.nodes import HUMAN_REVIEW
from graph.prompts import system_prompt
from graph.router import decide
from graph.tools import openai_tools
from graph.workflow import Workflow
from state.config import Settings
from state.deal_state import DealState
from state.models import Escalation, LLMUsage

AuditTurn = Callable[[list[Verdict]], None]
NUDGE = ("The deal is not finished. Call the tool(s) for the next step(s) the rules allow, or "
         "request_human_review if a person must decide.")


def facts_message(state: DealState, workflow: Workflow) -> HumanMessage:
    """The deal's current facts for the model (data, never instructions)."""
    facts: dict[str, Any] = state.model_dump(mode="json", include={"deal", "reviews"})
    for spec in workflow.steps:
        facts[spec.output] = _brief(getattr(state, spec.output, None))
    facts["completed_steps"] = state.completed_steps
    return HumanMessage(f"Current deal state (JSON data):\n{json.dumps(facts, default=str)}")


def tool_results(state: DealState, workflow: Workflow) -> list[ToolMessage]:
    """Answers to the tool calls that ran since the model last spoke."""
    answers = []
    for node, call_id in state.pending_tool_calls.items():
        if node in state.failures:
            text = f"FAILED after retries: {state.failures[node].error}"
        elif node == HUMAN_REVIEW:
            last = state.reviews[-1] if state.reviews else None
            text = f"reviewer decided: {last.decision} ({last.comment})" if last else "pending"
        else:
            output = getattr(state, workflow.step(node).output, None)
            text = f"done: {json.dumps(_brief(output), default=str)}"
        answers.append(ToolMessage(content=text, tool_call_id=call_id))
    return answers


def _brief(output: Any) -> Any:
    """An output as data for the model, without long texts (the contract's body)."""
    data = output.model_dump(mode="json") if hasattr(output, "model_dump") else output
    if isinstance(data, dict):
        data.pop("text", None)
    return data


def _forced(state: DealState, decision: Decision, mode: str, workflow: Workflow) -> bool:
    waits = [name for name in decision.goto if name != HUMAN_REVIEW]
    if state.failures or (waits and all(workflow.step(n).kind == "event" for n in waits)):
        return True
    return mode == "hybrid" and len(decision.goto) == 1


def llm_decide(state: DealState, settings: Settings, workflow: Workflow,
               audit_turn: AuditTurn) -> Decision:
    """One supervisor visit in `llm` or `hybrid` mode; `audit_turn` records the guard's verdicts."""
    mode = state.supervisor
    rules = decide(state, settings, workflow)
    answered = tool_results(state, workflow)
    base: dict[str, Any] = {"supervisor_messages": answered,
                            "pending_tool_calls": dict.fromkeys(state.pending_tool_calls)}
    if rules.outcome is not None:
        summary, usage, said = _summary(state, settings, workflow, rules, answered)
        return Decision(outcome=rules.outcome, reason=f"{mode} supervisor: outcome {rules.outcome}",
                        update={**base, "supervisor_messages": [*answered, *said],
                                "llm_summary": summary, "llm_usage": usage})
    if _forced(state, rules, mode, workflow):
        return Decision(goto=rules.goto, reason=f"{mode} supervisor (rules): {rules.reason}",
                        update=base)
    return _ask_model(state, settings, workflow, answered, base, audit_turn)


def _ask_model(state: DealState, settings: Settings, workflow: Workflow,
               answered: list[ToolMessage], base: dict[str, Any],
               audit_turn: AuditTurn) -> Decision:
    model = chat_model.build_chat_model(settings).bind_tools(openai_tools(workflow))
    history: list[AnyMessage] = [SystemMessage(system_prompt(settings, workflow)),
                                 *state.supervisor_messages]
    said: list[AnyMessage] = [*answered, facts_message(state, workflow)]
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
        usage = usage + chat_model.usage_of(answer, settings)
        said.append(answer)
        verdicts = check_turn(answer.tool_calls, state, settings, workflow)
        audit_turn(verdicts)
        said.extend(ToolMessage(content=f"REFUSED: {v.reason}", tool_call_id=v.call_id)
                    for v in verdicts if not v.allowed)
        allowed = [v for v in verdicts if v.allowed]
        if allowed:
            return _run(state, settings, workflow, base, said, usage, allowed)
        refused += 1
        if not answer.tool_calls:
            said.append(HumanMessage(NUDGE))
        if refused >= settings.llm_max_refused_turns:
            return _escalate(base, said, usage, f"{refused} model turns in a row were refused "
                             "by the workflow rules", "guard")


def _run(state: DealState, settings: Settings, workflow: Workflow, base: dict[str, Any],
         said: list[AnyMessage], usage: LLMUsage, allowed: list[Verdict]) -> Decision:
    update = {**base, "supervisor_messages": said, "llm_usage": usage, "llm_refused_turns": 0,
              "pending_tool_calls": {**base["pending_tool_calls"],
                                     **{v.node: v.call_id for v in allowed if v.node}}}
    nodes = tuple(v.node for v in allowed if v.node)
    reason = f"{state.supervisor} supervisor chose " + ", ".join(nodes)
    if nodes == (HUMAN_REVIEW,) and not workflow.needs_approval(state, settings):
        update["escalation"] = Escalation(reason=allowed[0].reason, requested_by="model")
        reason = allowed[0].reason
    return Decision(goto=nodes, reason=reason, update=update)


def _escalate(base: dict[str, Any], said: list[AnyMessage], usage: LLMUsage, reason: str,
              by: Literal["model", "guard", "budget"]) -> Decision:
    history = tuple(_line(m) for m in said[-8:])
    return Decision(goto=(HUMAN_REVIEW,), reason=reason, update={
        **base, "supervisor_messages": said, "llm_usage": usage, "llm_refused_turns": 0,
        "escalation": Escalation(reason=reason, requested_by=by, history=history)})


def _line(message: AnyMessage) -> str:
    calls = getattr(message, "tool_calls", None)
    if calls:
        return f"{message.type}: " + ", ".join(f"{c['name']}({c['args']})" for c in calls)
    return f"{message.type}: {str(message.content)[:300]}"


def _summary(state: DealState, settings: Settings, workflow: Workflow, route: Decision,
             answered: list[ToolMessage]) -> tuple[str, LLMUsage, list[AnyMessage]]:
    plain = (f"Deal {state.deal.deal_id} for {state.deal.client} ended {route.outcome} after "
             f"{', '.join(state.completed_steps) or 'no steps'}.")
    spent = state.llm_usage
    if state.supervisor != "llm" or spent.cost_usd >= settings.llm_budget_usd or spent.calls == 0:
        return plain, LLMUsage(), []
    closing = HumanMessage(f"The deal has ended: {route.outcome}. Summarize it in two sentences.")
    answer = chat_model.build_chat_model(settings).bind_tools(openai_tools(workflow)).invoke(
        [SystemMessage(system_prompt(settings, workflow)), *state.supervisor_messages,
         *answered, facts_message(state, workflow), closing])
    assert isinstance(answer, AIMessage)
    text = answer.content if isinstance(answer.content, str) and answer.content.strip() else plain
    return text, chat_model.usage_of(answer, settings), [closing, AIMessage(content=text)]

"""Scripted supervisor policies, shared by the fake chat model and the fake OpenAI server.

A policy looks at the conversation as `(role, content)` pairs plus the last deal
facts the supervisor sent, and returns tool calls (name, args) or a text answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

Call = tuple[str, dict[str, Any]]
Policy = Callable[[dict[str, Any], list[tuple[str, str]]], list[Call] | str]

FACTS_PREFIX = "Current deal state (JSON data):\n"


def last_facts(messages: list[tuple[str, str]]) -> dict[str, Any]:
    """The most recent deal facts the supervisor sent."""
    for role, content in reversed(messages):
        if role in ("human", "user") and content.startswith(FACTS_PREFIX):
            return dict(json.loads(content[len(FACTS_PREFIX):]))
    raise AssertionError("no deal facts in the conversation")


def agent(name: str, deal_id: str, step: str) -> Call:
    return (f"invoke_{name}_agent", {"deal_id": deal_id, "step": step, "instruction": ""})


def sensible(facts: dict[str, Any], messages: list[tuple[str, str]]) -> list[Call] | str:
    """What a competent orchestrator does next."""
    deal_id = facts["deal"]["deal_id"]
    done = set(facts["completed_steps"])
    if "ended" in messages[-1][1] and messages[-1][0] in ("human", "user"):
        return f"Deal {deal_id} is finished: every step ran once."
    if "qualify_lead" not in done:
        return [agent("lead", deal_id, "qualify_lead")]
    approved = any(r["decision"] == "approve" for r in facts.get("reviews", []))
    if float(facts["deal"]["value"]) > 50000 and not approved:
        return [("request_human_review", {"deal_id": deal_id, "reason": "over 50k"})]
    calls = []
    if "create_project" not in done:
        calls.append(agent("project", deal_id, "create_project"))
    if "generate_contract" not in done:
        calls.append(agent("contract", deal_id, "generate_contract"))
    if calls:
        return calls
    if "send_for_signature" not in done:
        return [agent("contract", deal_id, "send_for_signature")]
    if "generate_invoice" not in done:
        return [agent("finance", deal_id, "generate_invoice")]
    return f"Deal {deal_id} is complete."

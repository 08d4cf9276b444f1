"""A scripted tool-calling chat model (the network edge, faked)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, Field

from tests.llm_script import Policy, last_facts

_ids = itertools.count(1)


def as_pairs(messages: Sequence[BaseMessage]) -> list[tuple[str, str]]:
    """`(role, text)` of each message; refusals keep their text."""
    pairs = []
    for message in messages:
        text = message.content if isinstance(message.content, str) else str(message.content)
        pairs.append(("tool" if isinstance(message, ToolMessage) else message.type, text))
    return pairs


class ScriptedChatModel(BaseChatModel):
    """Answers with what `policy` returns; records every conversation it was given."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    policy: Any
    prompt_tokens: int = 1200
    completion_tokens: int = 60
    estimate_tokens: bool = False  # report ~len(text)/4 tokens instead of the fixed numbers
    needs_facts: bool = True  # hand the policy the last deal facts (supervisor conversations)
    conversations: list[list[tuple[str, str]]] = Field(default_factory=list)
    tools: list[Any] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:  # type: ignore[override]
        self.tools = list(tools)
        return self

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> ChatResult:
        pairs = as_pairs(messages)
        self.conversations.append(pairs)
        policy: Policy = self.policy
        answer = policy(last_facts(pairs) if self.needs_facts else {}, pairs)
        prompt, completion = self.prompt_tokens, self.completion_tokens
        if self.estimate_tokens:
            tools = sum(len(str(tool)) for tool in self.tools)
            prompt = (sum(len(text) for _, text in pairs) + tools) // 4
            completion = len(str(answer)) // 4
        usage = {"input_tokens": prompt, "output_tokens": completion,
                 "total_tokens": prompt + completion}
        if isinstance(answer, str):
            message = AIMessage(content=answer, usage_metadata=usage)  # type: ignore[arg-type]
        else:
            message = AIMessage(content="", usage_metadata=usage,  # type: ignore[arg-type]
                                tool_calls=[{"name": name, "args": args, "id": f"call_{next(_ids)}",
                                             "type": "tool_call"} for name, args in answer])
        return ChatResult(generations=[ChatGeneration(message=message)])

"""The supervisor's tools, generated from the workflow declaration.

One tool per agent (`invoke_<agent>_agent`, its `step` chosen from the agent's
declared steps) and `request_human_review`. Their argument models are what the
guard validates a model's tool call against.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, ConfigDict, Field, create_model

from graph.workflow import StepSpec, Workflow

REVIEW_TOOL = "request_human_review"


class ReviewArgs(BaseModel):
    """Hand the deal to a person, with the reason and the context they need."""

    model_config = ConfigDict(extra="forbid")

    deal_id: str = Field(description="The deal's id.")
    reason: str = Field(min_length=1, max_length=1000, description="Why a person must look.")
    context: str = Field(default="", max_length=4000, description="What the reviewer needs.")


@dataclass(frozen=True)
class AgentTool:
    """A tool that invokes one agent's step."""

    name: str
    agent: str
    steps: tuple[StepSpec, ...]
    args: type[BaseModel]


def _agent_tool(agent: str, steps: tuple[StepSpec, ...]) -> AgentTool:
    names = tuple(spec.name for spec in steps)
    step_type: Any = Literal[names]
    doc = f"Invoke the {agent} agent. " + " ".join(
        f"Step {spec.name}: {spec.description}" for spec in steps)
    args = create_model(
        f"Invoke{agent.title()}Agent",
        __config__=ConfigDict(extra="forbid"),
        __doc__=doc,
        deal_id=(str, Field(description="The deal's id.")),
        step=(step_type, Field(description="Which of the agent's steps to run.")),
        instruction=(str, Field(default="", max_length=1000,
                                description="Guidance for the agent (informational).")),
    )
    return AgentTool(name=f"invoke_{agent}_agent", agent=agent, steps=steps, args=args)


@cache
def agent_tools(workflow: Workflow) -> dict[str, AgentTool]:
    """The agent tools of a workflow, by name, in declaration order (built once per workflow)."""
    agents: dict[str, list[StepSpec]] = {}
    for spec in workflow.steps:
        if spec.kind == "agent":
            agents.setdefault(spec.agent, []).append(spec)
    tools = [_agent_tool(agent, tuple(steps)) for agent, steps in agents.items()]
    return {tool.name: tool for tool in tools}


@cache
def openai_tools(workflow: Workflow) -> list[dict[str, Any]]:
    """The tools in OpenAI's function-calling format, for `bind_tools` (built once)."""
    tools = agent_tools(workflow).values()
    specs = [convert_to_openai_tool(tool.args) | {} for tool in tools]
    for spec, tool in zip(specs, tools, strict=True):
        spec["function"]["name"] = tool.name
    review = convert_to_openai_tool(ReviewArgs)
    review["function"]["name"] = REVIEW_TOOL
    return [*specs, review]

"""Orchestration: the deal StateGraph, its supervisor and interrupt nodes, the workflow."""

from graph.builder import build_graph
from graph.runtime import DealContext
from graph.wait_policy import DeadlineSpec, SystemCall, WaitPolicy
from graph.workflow import DEFAULT_WORKFLOW, StepSpec, Workflow

__all__ = ["DEFAULT_WORKFLOW", "DeadlineSpec", "DealContext", "StepSpec", "SystemCall",
           "WaitPolicy", "Workflow", "build_graph"]

"""Orchestration: the deal StateGraph, its supervisor router and interrupt nodes."""

from graph.builder import build_graph

__all__ = ["build_graph"]

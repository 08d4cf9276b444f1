"""The compiled deal graph without a checkpointer, for LangGraph Server (`langgraph.json`)."""

from graph.builder import build_graph

graph = build_graph().compile(name="dealflow")

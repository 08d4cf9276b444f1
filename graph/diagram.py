"""The deal graph as a Mermaid diagram, produced by the compiled graph itself.

LangGraph adds one internal node per error handler; they only hand control back
to the supervisor, so the diagram leaves them out (and says so in a note).
Run `python -m graph.diagram` to print it.
"""

from __future__ import annotations

from langchain_core.runnables.graph import Graph, Node

from graph.builder import build_graph
from graph.nodes import handled_step
from state.config import Settings


def mermaid() -> str:
    """Mermaid source of the compiled deal graph, without error-handler nodes."""
    drawn = build_graph(Settings()).compile().get_graph()
    handlers = {n for n in drawn.nodes if handled_step(n)}
    clean = Graph()
    for node_id, node in drawn.nodes.items():
        if node_id not in handlers:
            clean.nodes[node_id] = Node(id=node.id, name=node.name, data=node.data, metadata=None)
    clean.edges = [e for e in drawn.edges if e.source not in handlers and e.target not in handlers]
    return clean.draw_mermaid(with_styles=False)


if __name__ == "__main__":
    print(mermaid())

from pathlib import Path

from graph.diagram import mermaid


def test_readme_shows_the_graph_as_it_is() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert mermaid().strip() in readme, "README diagram is stale: run make diagram"


def test_diagram_has_every_step_and_no_handler_nodes() -> None:
    drawn = mermaid()
    for node in ("qualify_lead", "create_project", "generate_contract", "send_for_signature",
                 "await_signature", "generate_invoice", "human_review", "supervisor"):
        assert f"supervisor -.-> {node}" in drawn or node == "supervisor"
    assert "__error_handler__" not in drawn

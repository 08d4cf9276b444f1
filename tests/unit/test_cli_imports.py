"""The CLI imports what a command needs when it runs: parsing and `--help` load no graph.

A new `dealflow` process used to spend over a second importing LangGraph, the
graph and the service stack before it read its first argument. These tests
look at `sys.modules` in a fresh interpreter (never at timings).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dealflow.cli_parser import STATUSES, build_parser
from state.models import STATUSES as STATE_STATUSES

# What a command that needs no graph must not have imported
HEAVY = ("langgraph", "langchain_core", "graph", "agents", "dealflow.api", "fastapi",
         "dealflow.service")
# What a deal command that reads (`status`, `records`) must not have imported either: the
# LLM stack (the LLM supervisor's), langchain's agents (the review node's), the service's
LAZY = ("langchain", "langchain_openai", "openai", "tiktoken", "langgraph.prebuilt",
        "langchain_core.output_parsers", "fastapi", "uvicorn", "procrastinate", "mcp",
        "dealflow.service", "dealflow.mcp_server")


def _imported_after(code: str, modules: tuple[str, ...] = HEAVY) -> list[str]:
    """The `modules` a fresh interpreter has imported after running `code`."""
    probe = (f"import sys\n{code}\n"
             f"print(__import__('json').dumps([m for m in {modules!r} if m in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120, check=True)
    return list(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.parametrize("argv", [["status", "D-1"], ["threads", "--status", "completed"],
                                  ["records", "D-1", "--json"], ["history", "D-1"],
                                  ["prune", "--ended-before", "90d", "--dry-run"]])
def test_parsing_a_command_imports_no_graph(argv: list[str]) -> None:
    code = f"from dealflow.cli_parser import build_parser; build_parser().parse_args({argv!r})"
    assert _imported_after(code) == []


def test_the_help_imports_no_graph_and_names_the_database() -> None:
    code = ("import os; os.environ['DATABASE_URL'] = 'postgresql://me:s3cret@db.example/deals'\n"
            "from dealflow.cli_parser import build_parser\n"
            "text = build_parser().format_help()\n"
            "assert 'here: postgresql://me:***@db.example/deals' in text, text\n"
            "assert 's3cret' not in text")
    assert _imported_after(code) == []


def test_the_parser_lists_every_status_the_state_knows() -> None:
    assert STATUSES == STATE_STATUSES


def test_the_events_are_still_checked_and_listed(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    assert parser.parse_args(["event", "D-1", "signature.completed"]).event == \
        "signature.completed"
    with pytest.raises(SystemExit):
        parser.parse_args(["event", "D-1", "signature.lost"])
    assert "invalid choice: 'signature.lost'" in capsys.readouterr().err
    for argv in (["event", "--help"], ["audit", "--help"]):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
    shown = " ".join(capsys.readouterr().out.split())
    assert "{signature.completed,signature.declined} the event" in shown
    assert "only this agent (lead, project" in shown


def test_a_deal_command_imports_no_llm_agents_or_service_stack() -> None:
    code = "import dealflow.api, dealflow.cli_commands, dealflow.cli_run, dealflow.render"
    assert _imported_after(code, LAZY) == []


def test_the_graph_package_imports_its_names_when_asked() -> None:
    assert _imported_after("import graph", ("graph.builder", "langgraph")) == []
    code = ("from graph import DealContext, Workflow, build_graph\n"
            "import graph.builder, graph.runtime, graph.workflow\n"
            "assert build_graph is graph.builder.build_graph\n"
            "assert DealContext is graph.runtime.DealContext\n"
            "assert Workflow is graph.workflow.Workflow")
    assert _imported_after(code, ("graph.builder",)) == ["graph.builder"]

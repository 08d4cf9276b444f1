"""One deal, many drivers: whatever drives the graph, every other entry point sees the same deal.

Plain LangGraph (sync and async, as the README shows it), `DealService`, the
`dealflow` CLI and the MCP tools read one registry, one checkpointer and one
data layer, because the graph's own nodes keep them.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

from langgraph.types import Command

from dealflow.api import DealService
from dealflow.mcp_tools import DealTools
from graph import DealContext, build_graph
from state.checkpointer import make_checkpointer
from state.config import Settings
from state.database import open_pool
from tests.conftest import cli_env, run_cli
from tests.helpers import ONE_EACH, counts, make_deal


def _plain_graph(settings: Settings) -> tuple[Any, Any, DealContext]:
    pool = open_pool(settings.database_url or "")
    saver = make_checkpointer(pool)
    graph = build_graph(settings).compile(checkpointer=saver)
    return pool, graph, DealContext.on(pool, settings, saver=saver)


def test_a_deal_started_from_plain_langgraph_is_everyones(settings: Settings,
                                                          service: DealService) -> None:
    pool, graph, context = _plain_graph(settings)
    config = {"configurable": {"thread_id": "deal-D-2001"}}
    try:
        graph.invoke({"deal": make_deal("D-2001", "68000.00")}, config, context=context)
        env = cli_env(settings.database_url)
        status = run_cli(["status", "D-2001", "--json"], env)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["status"] == "waiting_review"
        listed = run_cli(["threads", "--status", "waiting_review", "--json"], env)
        assert [t["deal_id"] for t in json.loads(listed.stdout)["threads"]] == ["D-2001"]
        assert [r["deal_id"] for r in DealTools(service).pending_reviews()] == ["D-2001"]
        # other terms for the same deal id are refused, whoever asks
        other = run_cli(["run", "--deal-id", "D-2001", "--client", "Someone Else", "--value",
                         "500"], env)
        assert other.returncode == 4 and "different terms (Acme GmbH, 68,000.00 USD)" in \
            other.stderr
        # approved from Python: no entry point lists it as waiting for review any more
        graph.invoke(Command(resume={"decision": "approve", "reviewer": "py"}), config,
                     context=context)
        assert service.threads("waiting_review") == []
        assert DealTools(service).pending_reviews() == []
        assert service.status("D-2001").status == "waiting_signature"
        # the CLI finishes what Python started; spans and audit came from the graph itself
        done = run_cli(["event", "D-2001", "signature.completed", "--json"], env)
        assert json.loads(done.stdout)["status"] == "completed"
        trace = json.loads(run_cli(["trace", "D-2001", "--json"], env).stdout)
        nodes = [s["node"] for s in trace["spans"]]
        assert nodes[:2] == ["supervisor", "qualify_lead"] and "generate_invoice" in nodes
        assert any(e.actor == "py" for e in service.audit("D-2001"))
        assert counts(service.records("D-2001")) == ONE_EACH
    finally:
        pool.close()


def test_the_async_api_works_on_the_projects_checkpointer(settings: Settings,
                                                          service: DealService) -> None:
    sync_pool = open_pool(settings.database_url or "")
    saver = make_checkpointer(sync_pool)  # its async methods run off the event loop
    context = DealContext.on(sync_pool, settings, saver=saver)

    async def drive() -> list[str]:
        graph = build_graph(settings).compile(checkpointer=saver)
        config = {"configurable": {"thread_id": "deal-AS-1"}}
        seen = [node async for chunk in graph.astream(
            {"deal": make_deal("AS-1", "70000.00")}, config, context=context,
            stream_mode="updates") for node in chunk]
        waiting = await graph.aget_state(config)
        assert waiting.next == ("human_review",)
        await graph.ainvoke(Command(resume=[{"type": "accept", "args": None}]), config,
                            context=context)  # an Agent Inbox answer
        result = await graph.ainvoke(Command(resume="signature.completed"), config,
                                     context=context)
        assert result["outcome"] == "completed"
        history = [s async for s in graph.aget_state_history(config)]
        assert history[0].values["invoice"].total == Decimal("75600.00")
        return seen

    try:
        seen = asyncio.run(drive())
    finally:
        sync_pool.close()
    assert seen[:2] == ["supervisor", "qualify_lead"]
    assert service.status("AS-1").status == "completed"
    assert [row.deal_id for row, _ in service.threads("completed")] == ["AS-1"]


def test_a_thread_edited_at_its_review_has_a_next_step_that_works(settings: Settings,
                                                                  service: DealService) -> None:
    pool, graph, context = _plain_graph(settings)
    config = {"configurable": {"thread_id": "deal-ED-1"}}
    try:
        graph.invoke({"deal": make_deal("ED-1", "68000.00")}, config, context=context)
        edited = make_deal("ED-1", "69000.00")
        graph.update_state(config, {"deal": edited})  # no as_node: the review is left pending
        stuck = service.status("ED-1")
        assert stuck.status == "running"
        env = cli_env(settings.database_url)
        resume = run_cli(["resume", "ED-1", "--decision", "approve"], env)
        assert resume.returncode == 4 and "dealflow recover" in resume.stderr
        recovered = run_cli(["recover", "--json"], env)
        assert [r["deal_id"] for r in json.loads(recovered.stdout)["recovered"]] == ["ED-1"]
        assert service.status("ED-1").status == "waiting_review"
        approved = run_cli(["resume", "ED-1", "--decision", "approve", "--json"], env)
        assert json.loads(approved.stdout)["status"] == "waiting_signature"
        assert service.status("ED-1").context["deal"]["value"] == "69000.00"
    finally:
        pool.close()

"""The MCP server: in process, as a stdio subprocess, over HTTP, and from a LangGraph agent."""

from __future__ import annotations

import getpass
import json
import re
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.memory import create_connected_server_and_client_session

from dealflow.api import DealService, thread_id_for
from dealflow.mcp_server import build_mcp_server
from tests.conftest import cli_env, dealflow_executable
from tests.helpers import make_deal

READ_TOOLS = {"get_deal_context", "list_deals", "list_pending_reviews", "get_audit_trail"}
WRITE_TOOLS = {"submit_review", "record_signature_event"}


def _data(result: Any) -> Any:
    assert not result.isError, result.content
    if result.structuredContent is not None:
        return result.structuredContent.get("result", result.structuredContent)
    return json.loads(result.content[0].text)


def _error(result: Any) -> str:
    assert result.isError
    return str(result.content[0].text)


@asynccontextmanager
async def _in_process(service: DealService) -> AsyncIterator[ClientSession]:
    server = build_mcp_server(service)
    async with create_connected_server_and_client_session(server._mcp_server) as session:
        yield session


def test_tools_read_context_and_act_on_reviews(service: DealService) -> None:
    service.start(make_deal("MCP-1", "60000.00"))

    async def scenario() -> None:
        async with _in_process(service) as session:
            tools = {t.name: t for t in (await session.list_tools()).tools}
            assert set(tools) == READ_TOOLS | WRITE_TOOLS
            assert tools["get_deal_context"].inputSchema["properties"]["include_history"]
            context = _data(await session.call_tool(
                "get_deal_context", {"deal_id": "MCP-1", "include_history": True}))
            assert context["stage"] == "waiting_review" and context["client"] == "Acme GmbH"
            assert context["payment_status"] == "not invoiced"
            assert context["shared_context"]["MCP-1.qualified"]["qualified"] is True
            assert [h["action"] for h in context["history"]][:2] == ["route", "effect.performed"]
            pending = _data(await session.call_tool("list_pending_reviews", {}))
            assert pending[0]["request"]["action_requests"][0]["name"] == "approve_deal"
            assert [d["name"] for d in pending[0]["deadlines"]] == [
                "review.remind", "review.escalate", "review.expire"]  # the defaults
            done = _data(await session.call_tool("submit_review", {
                "thread_id": thread_id_for("MCP-1"), "decision": "approve", "comment": "fine"}))
            assert done["status"] == "waiting_signature"
            signed = _data(await session.call_tool("record_signature_event", {
                "thread_id": thread_id_for("MCP-1"), "event": "signature.completed"}))
            assert signed["status"] == "completed"
            text = await session.read_resource("deal://MCP-1/contract")  # type: ignore[arg-type]
            assert "MASTER SERVICES AGREEMENT" in text.contents[0].text  # type: ignore[union-attr]

    anyio.run(scenario)
    me = f"mcp:{getpass.getuser()}"  # the authenticated identity, not the client's name
    review = next(e for e in service.audit("MCP-1") if e.action == "review.decision")
    assert review.actor == me and review.reason == "fine"
    calls = service.audit("MCP-1", agent="mcp")
    assert [e.actor for e in calls] == [me, me]
    assert calls[0].detail["client"] == "mcp"  # the client's own name, as a label


def test_bad_input_is_a_tool_error_and_the_server_survives(service: DealService) -> None:
    service.start(make_deal("MCP-2", "60000.00"))

    async def scenario() -> None:
        async with _in_process(service) as session:
            cases = [
                ("get_deal_context", {"deal_id": "nope"}, "no deal or thread 'nope'"),
                ("get_deal_context", {"deal_id": "x" * 1_000_000}, "no deal id"),
                ("get_deal_context", {"deal_id": "' OR 1=1 --"}, "no deal or thread"),
                ("get_deal_context", {"deal_id": "MCP-2", "include_history": "maybe"},
                 "include_history"),
                ("get_deal_context", {}, "deal_id"),
                ("list_deals", {"status": "$.x ')--"}, "unknown status"),
                ("submit_review", {"thread_id": "MCP-2", "decision": "retry", "comment": ""},
                 "does not fit the pending approval review"),
                ("submit_review", {"thread_id": "MCP-2", "decision": "yes", "comment": ""},
                 "decision"),
                ("submit_review", {"thread_id": "MCP-2", "decision": "approve",
                                   "comment": "ok\x00\x1b]0;owned\x07"},
                 "comment: Value error, must not contain control characters"),
                ("record_signature_event", {"thread_id": "MCP-2",
                                            "event": "signature.completed"},
                 "not waiting for a signature event"),
                ("no_such_tool", {}, "Unknown tool"),
            ]
            for tool, args, message in cases:
                assert message in _error(await session.call_tool(tool, args)), (tool, message)
            still = _data(await session.call_tool("get_deal_context", {"deal_id": "MCP-2"}))
            assert still["stage"] == "waiting_review"

    anyio.run(scenario)


def test_stdio_subprocess(service: DealService, database_url: str) -> None:
    service.start(make_deal("MCP-3"))
    params = StdioServerParameters(command=dealflow_executable(), args=["mcp"],
                                   env=cli_env(database_url))

    async def scenario() -> dict[str, Any]:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            names = {t.name for t in (await session.list_tools()).tools}
            assert names == READ_TOOLS | WRITE_TOOLS
            return dict(_data(await session.call_tool("get_deal_context", {"deal_id": "MCP-3"})))

    assert anyio.run(scenario)["stage"] == "waiting_signature"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("token", [None, "s3cret-token-for-tests"])
def test_http_transport_with_and_without_a_token(service: DealService, database_url: str,
                                                 token: str | None) -> None:
    service.start(make_deal("MCP-4", "60000.00"))
    port = _free_port()
    extra = {"DEALFLOW_MCP_TOKEN": token} if token else {}
    proc = subprocess.Popen([dealflow_executable(), "mcp", "--transport", "http", "--port",
                             str(port)], env=cli_env(database_url, **extra),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/mcp"

    async def session_with(headers: dict[str, str]) -> dict[str, Any]:
        async with httpx.AsyncClient(headers=headers) as http, \
                streamable_http_client(url, http_client=http) as (read, write, _), \
                ClientSession(read, write) as session:
            await session.initialize()
            names = {t.name for t in (await session.list_tools()).tools}
            outcome: dict[str, Any] = {"names": names}
            if "submit_review" in names:
                outcome["review"] = await session.call_tool("submit_review", {
                    "thread_id": "MCP-4", "decision": "approve", "comment": "via http"})
            return outcome

    def refused(headers: dict[str, str]) -> int:
        """The status of a bare MCP request (before any session) with these headers."""
        body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "probe", "version": "1"}}}
        return httpx.post(url, json=body, headers={
            "Accept": "application/json, text/event-stream", **headers}).status_code

    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, proc.stderr
                time.sleep(0.1)
        good = {"Authorization": f"Bearer {token}"} if token else {}
        assert refused({**good, "Host": "evil.example:80"}) == 421  # DNS rebinding
        assert refused({**good, "Origin": "http://evil.example"}) == 403
        if token is None:
            assert anyio.run(session_with, {})["names"] == READ_TOOLS
            assert service.status("MCP-4").status == "waiting_review"
        else:
            assert refused({}) == 401  # reads need the token too
            assert refused({"Authorization": "Bearer wrong"}) == 401
            assert service.status("MCP-4").status == "waiting_review"
            right = anyio.run(session_with, {"Authorization": f"Bearer {token}"})
            assert _data(right["review"])["status"] == "waiting_signature"
            [call] = service.audit("MCP-4", agent="mcp")
            assert call.actor == "mcp:mcp-token" and call.detail["client"] == "mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_tools_load_into_a_langgraph_agent(service: DealService) -> None:
    from langchain.agents import create_agent
    from langchain_core.messages import AIMessage
    from langchain_mcp_adapters.tools import load_mcp_tools

    from tests.fakes import ScriptedChatModel

    service.start(make_deal("MCP-5"))

    def reader(facts: Any, messages: list[tuple[str, str]]) -> Any:
        if messages[-1][0] == "tool":
            stage = re.search(r"stage\W+(\w+)", messages[-1][1])
            return f"The deal is {stage.group(1) if stage else 'unknown'}."
        return [("get_deal_context", {"deal_id": "MCP-5"})]

    model = ScriptedChatModel(policy=reader, needs_facts=False)

    async def scenario() -> list[Any]:
        async with _in_process(service) as session:
            tools = await load_mcp_tools(session)
            agent = create_agent(model, tools)
            result = await agent.ainvoke({"messages": [("user", "What stage is MCP-5 in?")]})
            return list(result["messages"])

    messages = anyio.run(scenario)
    assert isinstance(messages[-1], AIMessage)
    assert messages[-1].content == "The deal is waiting_signature."

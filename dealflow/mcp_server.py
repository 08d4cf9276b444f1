"""`dealflow mcp`: an MCP server (official `mcp` SDK) over stdio or streamable HTTP.

Read tools are always offered. The write tools (`submit_review`,
`record_signature_event`) change deals: over stdio they run as the local user;
over HTTP they are offered only when `DEALFLOW_MCP_TOKEN` is configured, and
every call must carry `Authorization: Bearer <token>`. Each write is audited
with the caller's identity.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any, Literal

import anyio
from mcp.server.fastmcp import Context, FastMCP
from mcp.server.fastmcp.exceptions import ToolError

from dealflow.api import DealService
from dealflow.errors import DealflowError
from dealflow.mcp_tools import DealTools

INSTRUCTIONS = ("dealflow runs deals from lead to invoice. Read a deal's facts with "
                "get_deal_context, find work with list_deals and list_pending_reviews, and "
                "answer reviews with submit_review.")


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return await anyio.to_thread.run_sync(fn, *args)
    except DealflowError as exc:
        raise ToolError(str(exc)) from None


def _caller(ctx: Context, transport: str) -> str:
    params = ctx.session.client_params
    name = params.clientInfo.name if params is not None else "unknown-client"
    return f"mcp:{name}" + ("" if transport == "stdio" else " (bearer token)")


def _authorize(ctx: Context, token: str | None) -> None:
    if token is None:
        return
    request = ctx.request_context.request
    header = request.headers.get("authorization", "") if request is not None else ""
    if not hmac.compare_digest(header.encode(), f"Bearer {token}".encode()):
        raise ToolError("unauthorized: this tool needs 'Authorization: Bearer <token>'")


def build_mcp_server(service: DealService, *, transport: Literal["stdio", "http"] = "stdio",
                     host: str = "127.0.0.1", port: int = 8000) -> FastMCP:
    """The MCP server over `service`; write tools as the transport and settings allow."""
    tools = DealTools(service)
    token = service.settings.mcp_token.get_secret_value() if service.settings.mcp_token else None
    server = FastMCP("dealflow", instructions=INSTRUCTIONS, host=host, port=port)
    _read_tools(server, tools)
    if transport == "stdio" or token is not None:
        _write_tools(server, tools, transport, token if transport == "http" else None)
    return server


def _read_tools(server: FastMCP, tools: DealTools) -> None:
    @server.tool()
    async def get_deal_context(deal_id: str, include_history: bool = False) -> dict[str, Any]:
        """A deal's facts as the agents see them.

        Client, value, stage, project, contract, signature, invoice and payment status,
        pending review; with include_history, every event in order with its time.
        """
        return await _call(tools.deal_context, deal_id, include_history)

    @server.tool()
    async def list_deals(status: str | None = None) -> list[dict[str, Any]]:
        """Deals with thread id and status, newest first.

        status filters: running, waiting_review, waiting_signature, completed,
        disqualified, declined, rejected, failed.
        """
        return await _call(tools.list_deals, status)

    @server.tool()
    async def list_pending_reviews() -> list[dict[str, Any]]:
        """Threads waiting for a person's decision, each with its review request."""
        return await _call(tools.pending_reviews)

    @server.tool()
    async def get_audit_trail(deal_id: str) -> list[dict[str, Any]]:
        """Who did what for a deal, in order: routing, context writes, effects, reviews."""
        return await _call(tools.audit_trail, deal_id)

    @server.resource("deal://{deal_id}/contract", mime_type="text/plain")
    async def contract(deal_id: str) -> str:
        """The deal's contract text as stored."""
        return await _call(tools.contract_text, deal_id)



def _write_tools(server: FastMCP, tools: DealTools, transport: str,
             write_token: str | None) -> None:
    @server.tool()
    async def submit_review(thread_id: str, decision: Literal["approve", "reject", "retry"],
                            comment: str, ctx: Context) -> dict[str, Any]:
        """Answer a thread's pending review.

        approve or reject a large deal; retry or reject a failed step. Changes the
        deal; audited with your identity.
        """
        _authorize(ctx, write_token)
        return await _call(tools.submit_review, thread_id, decision, comment,
                           _caller(ctx, transport))

    @server.tool()
    async def record_signature_event(
            thread_id: str, event: Literal["signature.completed", "signature.declined"],
            ctx: Context) -> dict[str, Any]:
        """Deliver the signer's answer to a thread waiting for it.

        Changes the deal; audited with your identity.
        """
        _authorize(ctx, write_token)
        return await _call(tools.record_signature_event, thread_id, event,
                           _caller(ctx, transport))


def serve(service: DealService, transport: Literal["stdio", "http"], host: str, port: int
          ) -> None:
    """Run the server until the client disconnects (stdio) or the process is stopped."""
    server = build_mcp_server(service, transport=transport, host=host, port=port)
    server.run("stdio" if transport == "stdio" else "streamable-http")

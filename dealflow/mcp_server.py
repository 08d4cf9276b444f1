"""`dealflow mcp`: an MCP server (official `mcp` SDK) over stdio or streamable HTTP.

Over stdio the server runs as the local user and offers every tool. Over HTTP:

- with `DEALFLOW_MCP_TOKEN` set, every request (read tools and the contract
  resource too: deal values, contracts and audit trails are business data)
  must carry `Authorization: Bearer <token>`, checked by the SDK's own bearer
  middleware; the write tools are offered;
- without it, only the read tools are offered;
- Host and Origin headers are checked against an allow-list (DNS-rebinding
  protection, the SDK's `TransportSecuritySettings`): the HTTP API's rule
  (`dealflow.service.guards.allowed_host_names`: localhost, the bound host,
  `DEALFLOW_ALLOWED_HOSTS`), plus every `--allow-host`.

Writes are audited with the authenticated identity (the local user over stdio,
`DEALFLOW_MCP_IDENTITY` for the token over HTTP); the client's self-reported
name is kept only as a label.
"""

from __future__ import annotations

import getpass
import hmac
from collections.abc import Callable, Sequence
from typing import Any, Literal

import anyio
import uvicorn
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.fastmcp import Context, FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings

from dealflow.api import DealService
from dealflow.errors import DealflowError
from dealflow.mcp_tools import DealTools
from dealflow.service import listen
from dealflow.service.guards import allowed_host_names

INSTRUCTIONS = ("dealflow runs deals from lead to invoice. Read a deal's facts with "
                "get_deal_context, find work with list_deals and list_pending_reviews, and "
                "answer reviews with submit_review.")


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return await anyio.to_thread.run_sync(fn, *args)
    except DealflowError as exc:
        raise ToolError(str(exc)) from None


class StaticTokenVerifier:
    """The SDK's `TokenVerifier` for one shared bearer token and the identity it stands for."""

    def __init__(self, token: str, identity: str) -> None:
        """Accept `token` (compared in constant time) as `identity`."""
        self._token = token.encode()
        self._identity = identity

    async def verify_token(self, token: str) -> AccessToken | None:
        """The access granted to `token`, or None if it is not the configured one."""
        if not hmac.compare_digest(token.encode(), self._token):
            return None
        return AccessToken(token="configured", client_id=self._identity, scopes=[])


def _actor(ctx: Context, transport: str) -> tuple[str, str]:
    """Who acts (authenticated), and the client's own name (a label only)."""
    params = ctx.session.client_params
    label = params.clientInfo.name[:100] if params is not None else "unknown-client"
    if transport == "stdio":
        return f"mcp:{getpass.getuser()}", label
    access = get_access_token()
    if access is None:
        raise ToolError("unauthorized: this server needs 'Authorization: Bearer <token>'")
    return f"mcp:{access.client_id}", label


def security_settings(host: str, allowed_hosts: Sequence[str]) -> TransportSecuritySettings:
    """DNS-rebinding protection: localhost, the bound host and every `--allow-host`."""
    unique = allowed_host_names(host, allowed_hosts)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[f"{h}:*" for h in unique] + list(unique),
        allowed_origins=[f"{scheme}://{h}{port}" for h in unique
                         for scheme in ("http", "https") for port in (":*", "")])


def build_mcp_server(service: DealService, *, transport: Literal["stdio", "http"] = "stdio",
                     host: str = "127.0.0.1", port: int = 8000,
                     allowed_hosts: Sequence[str] = ()) -> FastMCP:
    """The MCP server over `service`; write tools as the transport and settings allow."""
    tools = DealTools(service)
    settings = service.settings
    token = settings.mcp_token.get_secret_value() if settings.mcp_token else None
    auth: dict[str, Any] = {}
    if transport == "http" and token is not None:
        base = f"http://{host}:{port}"
        auth = {"token_verifier": StaticTokenVerifier(token, settings.mcp_identity),
                "auth": AuthSettings(issuer_url=base, resource_server_url=f"{base}/mcp")}
    server = FastMCP("dealflow", instructions=INSTRUCTIONS, host=host, port=port,
                     transport_security=security_settings(
                         host, [*settings.allowed_hosts, *allowed_hosts]), **auth)
    _read_tools(server, tools)
    if transport == "stdio" or token is not None:
        _write_tools(server, tools, transport)
    return server


def _read_tools(server: FastMCP, tools: DealTools) -> None:
    @server.tool()
    async def get_deal_context(deal_id: str, include_history: bool = False) -> dict[str, Any]:
        """A deal's facts as the agents see them.

        Client, value, stage, each step's output (qualification, project, contract,
        envelope, signature, invoice), payment status, the pending review or event;
        with include_history, every event in order with its time.
        """
        return await _call(tools.deal_context, deal_id, include_history)

    @server.tool()
    async def list_deals(status: str | None = None) -> list[dict[str, Any]]:
        """Deals with thread id and status, newest first.

        status filters: running, waiting_review, waiting_signature, waiting_event,
        completed, disqualified, declined, rejected, expired, failed.
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



def _write_tools(server: FastMCP, tools: DealTools, transport: str) -> None:
    @server.tool()
    async def submit_review(thread_id: str, decision: Literal["approve", "reject", "retry"],
                            comment: str, ctx: Context) -> dict[str, Any]:
        """Answer a thread's pending review.

        approve or reject a large deal; retry or reject a failed step. Changes the
        deal; audited with your identity.
        """
        return await _call(tools.submit_review, thread_id, decision, comment,
                           *_actor(ctx, transport))

    @server.tool()
    async def record_signature_event(
            thread_id: str, event: Literal["signature.completed", "signature.declined"],
            ctx: Context) -> dict[str, Any]:
        """Deliver the signer's answer to a thread waiting for it.

        Changes the deal; audited with your identity.
        """
        return await _call(tools.record_signature_event, thread_id, event,
                           *_actor(ctx, transport))


def serve(service: DealService, transport: Literal["stdio", "http"], host: str, port: int,
          allowed_hosts: Sequence[str] = ()) -> None:
    """Run the server until the client disconnects (stdio) or the process is stopped."""
    server = build_mcp_server(service, transport=transport, host=host, port=port,
                              allowed_hosts=allowed_hosts)
    if transport == "stdio":
        server.run("stdio")
        return
    sock = listen.bind(host, port)  # CannotListen (exit 7) if the port is in use
    config = uvicorn.Config(server.streamable_http_app(), host=host, port=port,
                            log_level=server.settings.log_level.lower())
    uvicorn.Server(config).run(sockets=[sock])  # as FastMCP.run("streamable-http") does

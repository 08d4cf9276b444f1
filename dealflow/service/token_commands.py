"""`dealflow token create|list|revoke`: what each does and prints (JSON and text)."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from dealflow.service.auth import TokenInfo, issue_token, list_tokens, revoke_token
from state.database import Pool


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _row(info: TokenInfo) -> dict[str, Any]:
    return {"name": info.name, "role": info.role, "state": info.state,
            "created_at": _when(info.created_at), "expires_at": _when(info.expires_at),
            "revoked_at": _when(info.revoked_at)}


def _table(infos: list[TokenInfo]) -> str:
    if not infos:
        return "no tokens (dealflow token create --role reviewer --name NAME)"
    lines = [f"{'NAME':<24} {'ROLE':<9} {'STATE':<8} {'CREATED':<17} EXPIRES"]
    for info in infos:
        expires = f"{info.expires_at:%Y-%m-%d %H:%M}" if info.expires_at else "never"
        lines.append(f"{info.name:<24} {info.role:<9} {info.state:<8} "
                     f"{info.created_at:%Y-%m-%d %H:%M} {expires}")
    return "\n".join(lines)


def token_command(pool: Pool, args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """Run `dealflow token <action>`; return its JSON and its text."""
    if args.token_action == "create":
        token, expires_at = issue_token(pool, args.name, args.role, args.expires_in)
        return {"token": token, "name": args.name, "role": args.role,
                "expires_at": _when(expires_at)}, token
    if args.token_action == "list":
        infos = list_tokens(pool)
        return {"tokens": [_row(info) for info in infos]}, _table(infos)
    revoke_token(pool, args.name)
    return {"revoked": args.name}, f"revoked {args.name}"

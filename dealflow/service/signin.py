"""Signing in to a server-rendered area: the inbox (`/inbox`) and the console (`/console`).

A service token typed in the form field "Token" (a POST body, never a URL) is
checked by `auth.authenticate` (failures throttled per address) and exchanged
for a session (`sessions.open_session`): an HTTP-only, SameSite=Strict cookie
scoped to the area's path, with a CSRF token each form echoes. The sign-in form
itself carries a double-submit CSRF token (a cookie and a hidden field). A
token without the area's role is refused (403) with the area's own words.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import anyio
from fastapi import FastAPI, Form, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from dealflow.api import DealService
from dealflow.service.auth import Caller, Throttle, Throttled, Unauthenticated, authenticate
from dealflow.service.sessions import COOKIE, SIGNIN_COOKIE, close_session, open_session, session_of


@dataclass(frozen=True)
class Area:
    """A signed-in area: its path, its sign-in template, the role it needs, its refusal."""

    prefix: str
    templates: Jinja2Templates
    template: str
    role: str
    refusal: Callable[[Caller], str]


def signin_page(request: Request, area: Area, error: str | None = None,
                status: int = 200) -> Response:
    """The sign-in form, with a fresh double-submit CSRF token."""
    token = secrets.token_urlsafe(24)
    response = area.templates.TemplateResponse(request, area.template, {
        "csrf": token, "error": error, "prefix": area.prefix}, status_code=status)
    response.set_cookie(SIGNIN_COOKIE, token, httponly=True, samesite="strict",
                        path=area.prefix, secure=request.url.scheme == "https")
    return response


def signin_routes(app: FastAPI, service: DealService, area: Area) -> None:
    """`POST <prefix>/signin` and `POST <prefix>/signout` for `area`."""

    @app.post(f"{area.prefix}/signin", include_in_schema=False)
    async def signin(request: Request, token: Annotated[str, Form()] = "",
                     csrf: Annotated[str, Form()] = "") -> Response:
        expected = request.cookies.get(SIGNIN_COOKIE) or ""
        if not csrf or not secrets.compare_digest(csrf, expected):
            return signin_page(request, area, "The form expired; please sign in again.", 403)
        try:  # 401 unknown, revoked or expired; 429 after too many failures from here
            caller = await anyio.to_thread.run_sync(
                authenticate, service.pool, token.strip(),
                request.client.host if request.client else None, Throttle.of(service.settings))
        except (Throttled, Unauthenticated) as exc:
            text = str(exc)
            answer = signin_page(request, area, f"{text[:1].upper()}{text[1:]}.",
                                 exc.http_status)
            if isinstance(exc, Throttled):
                answer.headers["Retry-After"] = str(exc.retry_after)
            return answer
        if not caller.may(area.role):
            return signin_page(request, area, area.refusal(caller), 403)
        session_id = await anyio.to_thread.run_sync(open_session, service.pool, caller)
        response = RedirectResponse(area.prefix, status_code=303)
        response.set_cookie(COOKIE, session_id, httponly=True, samesite="strict",
                            path=area.prefix, secure=request.url.scheme == "https")
        response.delete_cookie(SIGNIN_COOKIE, path=area.prefix)
        return response

    @app.post(f"{area.prefix}/signout", include_in_schema=False)
    async def signout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
        session = await anyio.to_thread.run_sync(session_of, service.pool,
                                                 request.cookies.get(COOKIE))
        if session is not None and session.form_ok(csrf):
            await anyio.to_thread.run_sync(close_session, service.pool,
                                           request.cookies.get(COOKIE))
        response = RedirectResponse(area.prefix, status_code=303)
        response.delete_cookie(COOKIE, path=area.prefix)
        return response

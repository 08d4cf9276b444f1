"""The reviewers' inbox: server-rendered pages under `/inbox`, served by `dealflow serve`.

Sign in with a service token (the form field "Token"; the token goes in a POST
body, never a URL, and is exchanged for an HTTP-only, SameSite=Strict session
cookie). Every form carries a CSRF token: the session's, or, on the sign-in
form, a double-submit cookie. Pages are Jinja2 templates with autoescaping; the
one small script and stylesheet ship in the package (`static/`), nothing comes
from another host. A decision is claimed at once (a review decided elsewhere is
refused with what ended it) and applied by the workers; the script polls the
deal's status so the page shows the new status without a reload.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Any

import anyio
import procrastinate
from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from dealflow.api import DealService
from dealflow.errors import DealflowError, NotFound
from dealflow.service.auth import Throttle, Throttled, Unauthenticated, authenticate
from dealflow.service.inbound import take_review
from dealflow.service.inbox_data import KINDS, pending_reviews, review_page
from dealflow.service.sessions import (
    COOKIE,
    SIGNIN_COOKIE,
    Session,
    close_session,
    open_session,
    session_of,
)

HERE = Path(__file__).parent
PREFIX = "/inbox"
_templates = Jinja2Templates(directory=str(HERE / "templates"))


def inbox_routes(app: FastAPI, service: DealService, queue: procrastinate.App) -> None:
    """Add the inbox's pages to `app`."""
    app.mount(f"{PREFIX}/static", StaticFiles(directory=str(HERE / "static")), name="inbox")

    async def current(request: Request) -> Session | None:
        return await anyio.to_thread.run_sync(session_of, service.pool,
                                              request.cookies.get(COOKIE))

    @app.get(PREFIX, response_class=HTMLResponse, include_in_schema=False)
    async def inbox(request: Request, kind: str | None = None) -> Response:
        session = await current(request)
        if session is None:
            return _signin_page(request)
        wanted = kind if kind in KINDS.values() else None
        reviews = await anyio.to_thread.run_sync(pending_reviews, service, wanted)
        return _page(request, "list.html", session, reviews=reviews, kind=wanted,
                     kinds=sorted(set(KINDS.values())))

    @app.post(f"{PREFIX}/signin", include_in_schema=False)
    async def signin(request: Request, token: Annotated[str, Form()] = "",
                     csrf: Annotated[str, Form()] = "") -> Response:
        expected = request.cookies.get(SIGNIN_COOKIE) or ""
        if not csrf or not secrets.compare_digest(csrf, expected):
            return _signin_page(request, "The form expired; please sign in again.", 403)
        try:  # 401 unknown, revoked or expired; 429 after too many failures from here
            caller = await anyio.to_thread.run_sync(
                authenticate, service.pool, token.strip(),
                request.client.host if request.client else None, Throttle.of(service.settings))
        except (Throttled, Unauthenticated) as exc:
            text = str(exc)
            page = _signin_page(request, f"{text[:1].upper()}{text[1:]}.", exc.http_status)
            if isinstance(exc, Throttled):
                page.headers["Retry-After"] = str(exc.retry_after)
            return page
        if not caller.may("reviewer"):
            return _signin_page(request, "Unknown or revoked token.", 401)
        session_id = await anyio.to_thread.run_sync(open_session, service.pool, caller)
        response = RedirectResponse(PREFIX, status_code=303)
        response.set_cookie(COOKIE, session_id, httponly=True, samesite="strict", path=PREFIX,
                            secure=request.url.scheme == "https")
        response.delete_cookie(SIGNIN_COOKIE, path=PREFIX)
        return response

    @app.post(f"{PREFIX}/signout", include_in_schema=False)
    async def signout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
        session = await current(request)
        if session is not None and session.form_ok(csrf):
            await anyio.to_thread.run_sync(close_session, service.pool,
                                           request.cookies.get(COOKIE))
        response = RedirectResponse(PREFIX, status_code=303)
        response.delete_cookie(COOKIE, path=PREFIX)
        return response

    @app.get(PREFIX + "/reviews/{deal_id}", response_class=HTMLResponse,
             include_in_schema=False)
    async def review(request: Request, deal_id: str) -> Response:
        session = await current(request)
        if session is None:
            return RedirectResponse(PREFIX, status_code=303)
        try:
            data = await anyio.to_thread.run_sync(review_page, service, deal_id)
        except NotFound as exc:
            return _page(request, "missing.html", session, message=str(exc), status=404)
        return _page(request, "review.html", session, **data)

    @app.get(PREFIX + "/reviews/{deal_id}/status", include_in_schema=False)
    async def status(request: Request, deal_id: str) -> Response:
        if await current(request) is None:
            return JSONResponse({"error": "sign in first"}, status_code=401)
        try:
            report = await anyio.to_thread.run_sync(service.status, deal_id)
        except DealflowError as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.http_status)
        return JSONResponse({"status": report.status})

    @app.post(PREFIX + "/reviews/{deal_id}", include_in_schema=False)
    async def decide(request: Request, deal_id: str, decision: Annotated[str, Form()] = "",
                     comment: Annotated[str, Form()] = "",
                     csrf: Annotated[str, Form()] = "") -> Response:
        session = await current(request)
        if session is None:
            return JSONResponse({"error": "sign in first"}, status_code=401)
        if not session.form_ok(csrf):
            return JSONResponse({"error": "the form expired; reload the page"},
                                status_code=403)
        answer = {"decision": decision, "comment": comment, "reviewer": session.caller.name}
        try:
            taken = await take_review(service, queue, deal_id, answer)
        except DealflowError as exc:
            return _answer(request, deal_id, str(exc), exc.http_status)
        done = "was recorded already" if taken.duplicate else "recorded"
        return _answer(request, deal_id, f"{decision} {done}; the deal moves on", 202)


def _answer(request: Request, deal_id: str, message: str, status: int) -> Response:
    """JSON for the page's script; a redirect back to the page for a plain form post."""
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"message": message, "ok": status == 202}, status_code=status)
    return RedirectResponse(f"{PREFIX}/reviews/{deal_id}", status_code=303)


def _page(request: Request, template: str, session: Session, status: int = 200,
          **context: Any) -> Response:
    return _templates.TemplateResponse(request, template, {
        "reviewer": session.caller.name, "csrf": session.csrf, "prefix": PREFIX, **context},
        status_code=status)


def _signin_page(request: Request, error: str | None = None, status: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    response = _templates.TemplateResponse(request, "signin.html", {
        "csrf": token, "error": error, "prefix": PREFIX}, status_code=status)
    response.set_cookie(SIGNIN_COOKIE, token, httponly=True, samesite="strict", path=PREFIX,
                        secure=request.url.scheme == "https")
    return response

"""The console's web plumbing: the inbox's sessions, for operators only; pages; notices.

Signing in is `signin`'s (the inbox's way: a token in the form field "Token",
exchanged for an HTTP-only, SameSite=Strict session cookie, here scoped to
`/console`, and a CSRF token every form echoes). Only an operator's token opens
a console session; a reviewer's is told the console is for operators. After an
action the page is fetched again (POST, redirect, GET) and shows one line
saying what was done or why it was refused, carried by a short-lived cookie.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from dealflow.api import DealService
from dealflow.service.sessions import COOKIE, Session, session_of
from dealflow.service.signin import Area
from dealflow.service.signin import signin_page as shared_signin_page
from dealflow.service.signin import signin_routes as shared_signin_routes

HERE = Path(__file__).parent
PREFIX = "/console"
NOTICE = "dealflow_console_notice"  # the one line shown after an action
OPERATORS_ONLY = "The operations console is for operators only"
templates = Jinja2Templates(directory=str(HERE / "templates"))
AREA = Area(PREFIX, templates, "console_signin.html", "operator",
            lambda caller: f"{OPERATORS_ONLY}: the token {caller.name!r} is a {caller.role}'s; "
                           "sign in with an operator token.")


async def signed_in(service: DealService, request: Request) -> Session | None:
    """The request's live console session, if any."""
    return await anyio.to_thread.run_sync(session_of, service.pool, request.cookies.get(COOKIE))


async def operator_or_page(service: DealService, request: Request) -> Session | Response:
    """The signed-in operator; else the sign-in page, or 403 for anyone else."""
    session = await signed_in(service, request)
    if session is None:
        return signin_page(request)
    if not session.caller.may("operator"):
        return message_page(request, "Operators only",
                            f"{OPERATORS_ONLY}; {session.caller.name} is a {session.caller.role}.",
                            403)
    return session


async def form_operator(service: DealService, request: Request,
                        csrf: str) -> Session | Response:
    """The operator a form comes from; 401 signed out, 403 without its CSRF token."""
    session = await operator_or_page(service, request)
    if isinstance(session, Response):
        if session.status_code == 200:  # the sign-in page: nobody is signed in
            session.status_code = 401
        return session
    if not session.form_ok(csrf):
        return message_page(request, "The form expired",
                            "The form expired or did not come from this console; reload "
                            "the page and try again.", 403, session)
    return session


def page(request: Request, template: str, session: Session, status: int = 200,
         **context: Any) -> Response:
    """A console page for `session`'s operator, with the notice left by the last action."""
    raw = request.cookies.get(NOTICE) or ""
    kind, _, text = unquote(raw).partition(":")
    notice = {"ok": kind == "ok", "text": text} if text and kind in ("ok", "no") else None
    response = templates.TemplateResponse(request, template, {
        "operator": session.caller.name, "csrf": session.csrf, "prefix": PREFIX,
        "notice": notice, **context}, status_code=status)
    if raw:
        response.delete_cookie(NOTICE, path=PREFIX)
    return response


def message_page(request: Request, title: str, text: str, status: int,
                 session: Session | None = None) -> Response:
    """A page that says one thing (not found, operators only, a form that expired)."""
    return templates.TemplateResponse(request, "console_message.html", {
        "operator": session.caller.name if session else None,
        "csrf": session.csrf if session else "", "prefix": PREFIX, "notice": None,
        "title": title, "text": text}, status_code=status)


def back_to(url: str, text: str, *, ok: bool) -> Response:
    """Redirect to `url` (303), which then shows `text` once: done, or refused."""
    response = RedirectResponse(url, status_code=303)
    line = " ".join(text.split())[:300]
    response.set_cookie(NOTICE, quote(f"{'ok' if ok else 'no'}:{line}", safe=""), max_age=120,
                        httponly=True, samesite="strict", path=PREFIX)
    return response


def signin_page(request: Request, error: str | None = None, status: int = 200) -> Response:
    """The console's sign-in form (`signin.signin_page`)."""
    return shared_signin_page(request, AREA, error, status)


def signin_routes(app: FastAPI, service: DealService) -> None:
    """`POST /console/signin` and `/console/signout`: the shared sign-in, operators only."""
    shared_signin_routes(app, service, AREA)

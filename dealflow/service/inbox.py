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
from dealflow.service.inbound import take_review
from dealflow.service.inbox_data import KINDS, form_edit, pending_reviews, review_page
from dealflow.service.sessions import COOKIE, Session, session_of
from dealflow.service.signin import Area, signin_page, signin_routes

HERE = Path(__file__).parent
PREFIX = "/inbox"
_templates = Jinja2Templates(directory=str(HERE / "templates"))
AREA = Area(PREFIX, _templates, "signin.html", "reviewer",
            lambda caller: "Unknown or revoked token.")


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
            return signin_page(request, AREA)
        wanted = kind if kind in KINDS.values() else None
        reviews = await anyio.to_thread.run_sync(pending_reviews, service, wanted)
        return _page(request, "list.html", session, reviews=reviews, kind=wanted,
                     kinds=sorted(set(KINDS.values())))

    signin_routes(app, service, AREA)

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
                     csrf: Annotated[str, Form()] = "", value: Annotated[str, Form()] = "",
                     payment_terms_days: Annotated[str, Form()] = "") -> Response:
        session = await current(request)
        if session is None:
            return JSONResponse({"error": "sign in first"}, status_code=401)
        if not session.form_ok(csrf):
            return JSONResponse({"error": "the form expired; reload the page"},
                                status_code=403)
        answer: dict[str, Any] = {"decision": decision, "comment": comment,
                                  "reviewer": session.caller.name}
        try:
            if decision == "edit":  # approve on the terms typed in the form
                terms = {"value": value, "payment_terms_days": payment_terms_days}
                answer = await anyio.to_thread.run_sync(
                    form_edit, service, deal_id, terms, comment, session.caller.name)
            taken = await take_review(service, queue, deal_id, answer)
        except DealflowError as exc:
            return _answer(request, deal_id, str(exc), exc.http_status)
        done = "was recorded already" if taken.duplicate else "recorded"
        what = "approval on the edited terms" if decision == "edit" else decision
        return _answer(request, deal_id, f"{what} {done}; the deal moves on", 202)


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

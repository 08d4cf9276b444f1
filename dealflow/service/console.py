"""The operations console: server-rendered pages under `/console`, served by `dealflow serve`.

For operators only (an operator token; the inbox's sign-in, `console_web`).

- `GET /console`: every deal, newest first, a page at a time, filtered by
  status, overdue, failed, client and the day it started (`console_data`).
- `GET /console/deals/{id}`: the deal's facts, its records in each system, its
  timeline, waits and deadlines, audit trail and checkpoints, and the actions
  that fit it now.
- `POST /console/deals/{id}/retry`, `/recover`, `/fork`, `/cancel` (after the
  confirmation page `GET /console/deals/{id}/cancel`): the actions of
  `dealflow.console_actions` and `dealflow.console_cancel`, in the operator's
  name; the job that carries an action on is queued for the workers.
- `GET /console/jobs` and `POST /console/jobs/{id}/retry`: the queue's failed
  jobs, and retrying one (`console_jobs`).

Every form carries the session's CSRF token (a POST without it is 403); after
an action the deal's page shows one line: what was done, or why it was refused.
Jinja2 templates with autoescaping, the inbox's stylesheet and one of the
console's own (`static/`); no script, nothing from another host.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated
from urllib.parse import quote, urlencode

import anyio
import procrastinate
import psycopg
from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from procrastinate.exceptions import ConnectorException

from dealflow.api import DealService
from dealflow.console_actions import Done, fork_deal, recover_deal, retry_step
from dealflow.console_cancel import cancel_deal
from dealflow.errors import DealflowError, NotFound
from dealflow.service.console_data import Filters, deal_page, deals_page
from dealflow.service.console_jobs import failed_jobs, retry_failed_job
from dealflow.service.console_web import (
    HERE,
    PREFIX,
    back_to,
    form_operator,
    message_page,
    operator_or_page,
    page,
    signin_routes,
)
from dealflow.service.jobs import defer_async
from state.models import STATUSES

Text = Annotated[str, Form()]


def console_routes(app: FastAPI, service: DealService, queue: procrastinate.App) -> None:
    """Add the console's pages and forms to `app`."""
    app.mount(f"{PREFIX}/static", StaticFiles(directory=str(HERE / "static")), name="console")
    signin_routes(app, service)

    @app.get(PREFIX, response_class=HTMLResponse, include_in_schema=False)
    async def deals(request: Request, status: str = "", overdue: str = "", failed: str = "",
                    client: str = "", cursor: str = "") -> Response:
        session = await operator_or_page(service, request)
        if isinstance(session, Response):
            return session
        params = request.query_params
        filters = Filters(status, bool(overdue), bool(failed), client[:200],
                          params.get("from", "")[:40], params.get("to", "")[:40])
        error: str | None = None
        try:
            shown, following = await anyio.to_thread.run_sync(
                deals_page, service, filters, cursor[:400] or None)
        except DealflowError as exc:
            shown, following, error = [], None, str(exc)
        return page(request, "console_list.html", session, status=422 if error else 200,
                    deals=shown, filters=filters, statuses=STATUSES, error=error,
                    paged=bool(cursor), first_query=urlencode(filters.query()),
                    next_query=urlencode({**filters.query(), "cursor": following})
                    if following else None)

    @app.get(PREFIX + "/deals/{deal_id}", response_class=HTMLResponse, include_in_schema=False)
    async def deal(request: Request, deal_id: str) -> Response:
        session = await operator_or_page(service, request)
        if isinstance(session, Response):
            return session
        try:
            data = await anyio.to_thread.run_sync(deal_page, service, deal_id)
        except NotFound as exc:
            return message_page(request, "Not found", str(exc), 404, session)
        return page(request, "console_deal.html", session, **data)

    @app.get(PREFIX + "/deals/{deal_id}/cancel", response_class=HTMLResponse,
             include_in_schema=False)
    async def confirm_cancel(request: Request, deal_id: str) -> Response:
        session = await operator_or_page(service, request)
        if isinstance(session, Response):
            return session
        try:
            data = await anyio.to_thread.run_sync(deal_page, service, deal_id)
        except NotFound as exc:
            return message_page(request, "Not found", str(exc), 404, session)
        return page(request, "console_cancel.html", session, **data)

    @app.get(PREFIX + "/jobs", response_class=HTMLResponse, include_in_schema=False)
    async def jobs(request: Request) -> Response:
        session = await operator_or_page(service, request)
        if isinstance(session, Response):
            return session
        return page(request, "console_jobs.html", session,
                    jobs=await failed_jobs(service, queue))

    @app.post(PREFIX + "/jobs/{job_id}/retry", include_in_schema=False)
    async def retry_job(request: Request, job_id: int, csrf: Text = "") -> Response:
        session = await form_operator(service, request, csrf)
        if isinstance(session, Response):
            return session
        try:
            done = await retry_failed_job(service, queue, job_id, session.caller.name)
        except DealflowError as exc:
            return back_to(f"{PREFIX}/jobs", f"Refused: {exc}", ok=False)
        return back_to(f"{PREFIX}/jobs", done.message, ok=True)

    _action_routes(app, service, queue)


def _action_routes(app: FastAPI, service: DealService, queue: procrastinate.App) -> None:
    """The POST forms of a deal's page: each runs one action in the operator's name."""

    async def act(request: Request, deal_id: str, csrf: str,
                  action: Callable[[str], Done]) -> Response:
        session = await form_operator(service, request, csrf)
        if isinstance(session, Response):
            return session
        target = f"{PREFIX}/deals/{quote(deal_id, safe='')}"
        try:
            done = await anyio.to_thread.run_sync(action, session.caller.name)
        except NotFound as exc:
            return message_page(request, "Not found", str(exc), 404, session)
        except DealflowError as exc:
            return back_to(target, f"Refused: {exc}", ok=False)
        message = done.message
        if done.follow_up is not None:
            follow = done.follow_up
            try:
                await defer_async(queue, follow.action, follow.thread_id, follow.payload)
            except (ConnectorException, psycopg.Error, OSError):
                message += " (its job could not be queued now: the sweep or Recover runs it)"
        return back_to(target, message, ok=True)

    @app.post(PREFIX + "/deals/{deal_id}/retry", include_in_schema=False)
    async def retry(request: Request, deal_id: str, csrf: Text = "",
                    comment: Text = "") -> Response:
        return await act(request, deal_id, csrf,
                         lambda who: retry_step(service, deal_id, who, comment[:2000]))

    @app.post(PREFIX + "/deals/{deal_id}/recover", include_in_schema=False)
    async def recover(request: Request, deal_id: str, csrf: Text = "") -> Response:
        return await act(request, deal_id, csrf, lambda who: recover_deal(service, deal_id, who))

    @app.post(PREFIX + "/deals/{deal_id}/cancel", include_in_schema=False)
    async def cancel(request: Request, deal_id: str, csrf: Text = "",
                     reason: Text = "") -> Response:
        return await act(request, deal_id, csrf,
                         lambda who: cancel_deal(service, deal_id, who, reason[:500]))

    @app.post(PREFIX + "/deals/{deal_id}/fork", include_in_schema=False)
    async def fork(request: Request, deal_id: str, csrf: Text = "", checkpoint: Text = "",
                   value: Text = "", payment_terms_days: Text = "",
                   comment: Text = "") -> Response:
        terms = {"value": value[:40], "payment_terms_days": payment_terms_days[:40]}
        return await act(request, deal_id, csrf, lambda who: fork_deal(
            service, deal_id, checkpoint, terms, who, comment[:2000]))

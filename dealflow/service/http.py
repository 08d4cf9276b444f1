"""The HTTP API (FastAPI): validate, record, enqueue; workers do the work.

Reads answer from Postgres with the same JSON as the CLI's `--json`. Commands
(start a deal, answer a review, a signed e-sign webhook) are checked here and
queued as `dealflow.drive` jobs (`dealflow.service.jobs`). Every error is
`{"error": "<one line>"}` with its status code, never a stack trace.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import anyio
import procrastinate
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.exceptions import HTTPException

from dealflow.api import DealService
from dealflow.cli import COMMANDS
from dealflow.errors import DealflowError, InvalidInput, NotFound
from dealflow.reports import DealReport, starting_report
from dealflow.service import webhooks
from dealflow.service.auth import Caller, caller_of
from dealflow.service.inbox import inbox_routes
from dealflow.service.jobs import defer_async
from dealflow.service.metrics import metrics_text
from state.deal_state import Status
from state.models import Comment, DealInput, ReviewChoice, SupervisorMode
from state.validation import first_error

_log = logging.getLogger(__name__)
_bearer = HTTPBearer(auto_error=False, description="a token from `dealflow token create`")


class DealRequest(DealInput):
    """The deal input the CLI takes, plus an optional supervisor mode."""

    supervisor: SupervisorMode | None = None


class ReviewRequest(BaseModel):
    """A reviewer's decision on a deal's pending review."""

    model_config = ConfigDict(extra="forbid")
    decision: ReviewChoice
    comment: Comment = ""


class Accepted(BaseModel):
    """A command was recorded and queued (or the deal already existed)."""

    thread_id: str
    deal_id: str
    status: str
    job_id: int | None = None


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message.splitlines()[0][:500]}, status_code=status)


def build_app(service: DealService, queue: procrastinate.App) -> FastAPI:
    """The API over `service`, queueing commands on `queue`."""
    app = FastAPI(title="dealflow", version="1", description=__doc__)
    _errors(app)
    _deal_routes(app, service, queue)
    _webhook_routes(app, service, queue)
    inbox_routes(app, service, queue)

    @app.get("/healthz", tags=["service"])
    async def healthz() -> dict[str, bool]:
        """200 when Postgres answers."""
        await _in_thread(_ping, service)
        return {"ok": True}

    @app.get("/metrics", tags=["service"], response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        """Prometheus text format: deals by status, jobs, step durations, webhooks."""
        body, content_type = await _in_thread(metrics_text, service)
        return PlainTextResponse(body, media_type=content_type)

    return app


def _ping(service: DealService) -> None:
    with service.pool.connection(timeout=5) as conn:
        conn.execute("SELECT 1")


async def _in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    return await anyio.to_thread.run_sync(fn, *args)


def _errors(app: FastAPI) -> None:
    @app.exception_handler(DealflowError)
    async def dealflow_error(request: Request, exc: DealflowError) -> JSONResponse:
        return _error(exc.http_status, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        where = ".".join(str(p) for p in errors[0]["loc"][1:]) if errors else "body"
        what = errors[0]["msg"] if errors else "invalid request"
        return _error(422, f"{where or 'body'}: {what}")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        _log.exception("unexpected error on %s %s", request.method, request.url.path)
        if type(exc).__module__.startswith("psycopg"):
            return _error(503, "the database is unavailable; try again")
        return _error(500, "internal error; the server log has the details")


def _authorized(service: DealService, role: str) -> Callable[..., Awaitable[Caller]]:
    async def caller(credentials: Annotated[HTTPAuthorizationCredentials | None,
                                            Depends(_bearer)]) -> Caller:
        if credentials is None:
            raise HTTPException(401, "missing 'Authorization: Bearer <token>'")
        found = await _in_thread(caller_of, service.pool, credentials.credentials)
        if found is None:
            raise HTTPException(401, "unknown or revoked token")
        if not found.may(role):
            raise HTTPException(403, f"this needs the {role} role; {found.name} is a "
                                     f"{found.role}")
        return found

    return caller


def _cli_json(service: DealService, command: str, **args: Any) -> Any:
    """What `dealflow <command> --json` prints, for the same arguments."""
    return COMMANDS[command](service, argparse.Namespace(**args), None)[0]


def _status(service: DealService, deal_id: str) -> DealReport:
    try:
        return service.status(deal_id)
    except NotFound:
        row = service.deal(deal_id)  # NotFound for an unknown deal
        return starting_report(row, "queued: a worker starts it shortly")


def _deal_routes(app: FastAPI, service: DealService, queue: procrastinate.App) -> None:
    operator = Depends(_authorized(service, "operator"))
    reader = Depends(_authorized(service, "reviewer"))

    @app.post("/v1/deals", status_code=202, tags=["deals"], response_model=Accepted,
              responses={200: {"model": Accepted}, 409: {}, 422: {}})
    async def start_deal(body: DealRequest, caller: Caller = operator) -> Any:
        """Record a deal and queue its start (202); the same terms again answer 200."""
        deal = DealInput.model_validate(body.model_dump(exclude={"supervisor"}))
        row, created = await _in_thread(service.register, deal)
        if not created:
            return JSONResponse(Accepted(thread_id=row.thread_id, deal_id=row.deal_id,
                                         status=row.status).model_dump(), status_code=200)
        job = await defer_async(queue, "start", row.thread_id, {
            "deal": deal.model_dump(mode="json"), "supervisor": body.supervisor})
        return Accepted(thread_id=row.thread_id, deal_id=row.deal_id, status=row.status,
                        job_id=job)

    @app.get("/v1/deals", tags=["deals"])
    async def list_deals(caller: Caller = reader,
                         status: Status | None = None,
                         limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                         cursor: str | None = None, overdue: bool = False) -> dict[str, Any]:
        """Deals, most recently updated first, one page at a time (`overdue`: past a deadline)."""
        data = await _in_thread(lambda: _cli_json(service, "threads", status=status,
                                                  limit=limit, cursor=cursor, overdue=overdue))
        return {"deals": data["threads"], "next_cursor": data["next_cursor"]}

    @app.get("/v1/deals/{deal_id}", tags=["deals"])
    async def deal_status(deal_id: str, caller: Caller = reader) -> dict[str, Any]:
        """The status JSON of `dealflow status --json`."""
        report = await _in_thread(_status, service, deal_id)
        return report.model_dump(mode="json")

    for view, arg in (("records", "deal_id"), ("audit", "deal_id"), ("trace", "thread"),
                      ("history", "thread")):
        _add_view(app, service, view, arg, reader)

    @app.post("/v1/deals/{deal_id}/review", status_code=202, tags=["deals"],
              response_model=Accepted, responses={409: {}, 422: {}})
    async def review(deal_id: str, body: ReviewRequest,
                     caller: Caller = reader) -> Accepted:
        """Answer the deal's pending review; your token's name goes into the audit trail."""
        answer = {"decision": body.decision, "comment": body.comment, "reviewer": caller.name}
        row = await _in_thread(service.claim_review, deal_id, answer)
        job = await defer_async(queue, "resume", row.thread_id, {"answer": answer})
        return Accepted(thread_id=row.thread_id, deal_id=row.deal_id,
                        status="waiting_review", job_id=job)


def _add_view(app: FastAPI, service: DealService, view: str, arg: str, reader: Any) -> None:
    async def read(deal_id: str, caller: Caller = reader) -> Any:
        extra = {"agent": None, "key": None} if view == "audit" else {}
        return await _in_thread(lambda: _cli_json(service, view, **{arg: deal_id}, **extra))

    read.__doc__ = f"As `dealflow {view} --json`."
    app.get(f"/v1/deals/{{deal_id}}/{view}", tags=["deals"], name=f"deal_{view}")(read)


def _webhook_routes(app: FastAPI, service: DealService, queue: procrastinate.App) -> None:
    secret = (service.settings.webhook_secret.get_secret_value()
              if service.settings.webhook_secret else None)

    @app.post("/v1/webhooks/esign", status_code=202, tags=["webhooks"],
              responses={200: {}, 401: {}, 404: {}, 422: {}})
    async def esign(request: Request) -> Any:
        """A signed e-sign event; answered at once, processed by a worker, once per event_id.

        Header `X-Dealflow-Signature: sha256=<hex HMAC-SHA256 of the raw body>`.
        """
        body = await request.body()
        if not webhooks.signature_ok(secret, body, request.headers.get(
                webhooks.SIGNATURE_HEADER)):
            raise HTTPException(401, f"missing or wrong {webhooks.SIGNATURE_HEADER}")
        try:
            event = webhooks.EsignEvent.model_validate_json(body)
        except ValidationError as exc:
            raise InvalidInput(first_error(exc, "event")) from None
        found = await _in_thread(webhooks.deal_of_envelope, service.pool, event.envelope_id)
        if found is None:
            raise NotFound(f"no envelope {event.envelope_id!r:.80}")
        deal_id, thread_id = found
        if not await _in_thread(webhooks.record_delivery, service.pool, event, deal_id):
            return JSONResponse({"event_id": event.event_id, "duplicate": True}, 200)
        try:  # 409 if the envelope expired first (or the other event won)
            await _in_thread(service.claim_event, thread_id, event.event)
        except DealflowError:
            await _in_thread(webhooks.forget_delivery, service.pool, event.event_id)
            raise
        try:
            job = await defer_async(queue, "event", thread_id, {"event": event.event})
        except Exception:
            await _in_thread(webhooks.forget_delivery, service.pool, event.event_id)
            raise
        await _in_thread(webhooks.note_job, service.pool, event.event_id, job)
        return {"event_id": event.event_id, "deal_id": deal_id, "job_id": job}


"""The HTTP API (FastAPI): validate, record, enqueue; workers do the work.

Reads answer from Postgres with the same JSON as the CLI's `--json`. Commands
(start a deal, answer a review, a signed e-sign webhook) are checked here and
queued as `dealflow.drive` jobs (`dealflow.service.jobs`). Every error is
`{"error": "<one line>"}` with its status code, never a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import anyio
import procrastinate
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException

from dealflow.api import DealService
from dealflow.errors import DealflowError, InvalidInput, NotFound
from dealflow.reports import DealReport, starting_report
from dealflow.service import guards, webhooks
from dealflow.service.auth import Caller, Throttle, authenticate
from dealflow.service.console import console_routes
from dealflow.service.docs import docs_routes
from dealflow.service.docusign_connect import docusign_routes
from dealflow.service.health import health_routes
from dealflow.service.inbound import take_event, take_review
from dealflow.service.inbox import inbox_routes
from dealflow.service.jobs import defer_async
from dealflow.service.limits import BodyLimit
from dealflow.service.metrics import metrics_text
from dealflow.service.worker_loop import WorkerHealth
from dealflow.views import VIEWS, threads_view
from state.models import Comment, DealInput, ReviewChoice, Status, SupervisorMode
from state.numerals import plain_number
from state.validation import first_error

_log = logging.getLogger(__name__)
_bearer = HTTPBearer(auto_error=False, description="a token from `dealflow token create`")


class DealRequest(DealInput):
    """The deal input the CLI takes, plus an optional supervisor mode."""

    supervisor: SupervisorMode | None = None


class ReviewRequest(BaseModel):
    """A reviewer's decision: `decision` (and `comment`), or LangChain's HITL `decisions`.

    `{"decisions": [{"type": "edit", "edited_action": {"name": "approve_deal", "args":
    {...}}}]}` approves on edited terms (see the README's review section).
    """

    model_config = ConfigDict(extra="forbid")
    decision: ReviewChoice | None = None
    comment: Comment = ""
    decisions: list[dict[str, Any]] | None = Field(default=None, max_length=1)

    def answer(self, reviewer: str) -> dict[str, Any]:
        """The answer `DealService` takes, in the name of `reviewer`."""
        if (self.decision is None) == (self.decisions is None):
            raise InvalidInput("give either decision (and comment) or decisions (HITL), "
                               "not both")
        if self.decisions is not None:
            return {"decisions": self.decisions, "reviewer": reviewer}
        return {"decision": self.decision, "comment": self.comment, "reviewer": reviewer}


class Accepted(BaseModel):
    """A command was recorded and queued (or the deal already existed)."""

    thread_id: str
    deal_id: str
    status: str
    job_id: int | None = None
    duplicate: bool = False
    note: str | None = None


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message.splitlines()[0][:500]}, status_code=status)


def build_app(service: DealService, queue: procrastinate.App, *,
              workers: WorkerHealth | None = None) -> FastAPI:
    """The API over `service`, queueing commands on `queue` (`workers`: this process's)."""
    app = FastAPI(title="dealflow", version="1", description=__doc__, docs_url=None,
                  redoc_url=None)  # docs_routes: /docs and /redoc without a CDN
    app.add_middleware(BodyLimit, max_bytes=service.settings.max_body_bytes)  # 413 over it
    _errors(app)
    _deal_routes(app, service, queue)
    _webhook_routes(app, service, queue)
    docusign_routes(app, service, queue)  # DocuSign Connect: /v1/webhooks/docusign
    inbox_routes(app, service, queue)
    console_routes(app, service, queue)  # /console: the operations console
    docs_routes(app)

    health_routes(app, service, workers)  # /healthz, /healthz/ready, /healthz/live

    @app.get("/metrics", tags=["service"], response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        """Prometheus text format: deals by status, jobs, step durations, webhooks."""
        body, content_type = await _in_thread(metrics_text, service)
        return PlainTextResponse(body, media_type=content_type)

    guards.install(app, service.settings)  # last: Host rule, security headers, 429s
    return app


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
    throttle = Throttle.of(service.settings)

    async def caller(request: Request, credentials: Annotated[
            HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Caller:
        if credentials is None:
            raise HTTPException(401, "missing 'Authorization: Bearer <token>'")
        found = await _in_thread(authenticate, service.pool, credentials.credentials,
                                 request.client.host if request.client else None, throttle)
        if not found.may(role):
            raise HTTPException(403, f"this needs the {role} role; {found.name} is a "
                                     f"{found.role}")
        return found

    return caller


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
        if body.supervisor is not None:  # 422 now, not a start job that cannot run
            service.require_supervisor(body.supervisor)
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
                         limit: Annotated[int, BeforeValidator(plain_number),
                                          Query(ge=1, le=1000)] = 100,
                         cursor: str | None = None, overdue: bool = False) -> dict[str, Any]:
        """Deals, most recently updated first, one page at a time (`overdue`: past a deadline)."""
        data, _ = await _in_thread(lambda: threads_view(service, status, limit, cursor,
                                                        overdue=overdue))
        return {"deals": data["threads"], "next_cursor": data["next_cursor"]}

    @app.get("/v1/deals/{deal_id}", tags=["deals"])
    async def deal_status(deal_id: str, caller: Caller = reader) -> dict[str, Any]:
        """The status JSON of `dealflow status --json`."""
        report = await _in_thread(_status, service, deal_id)
        return report.model_dump(mode="json")

    for view in VIEWS:
        _add_view(app, service, view, reader)

    @app.post("/v1/deals/{deal_id}/review", status_code=202, tags=["deals"],
              response_model=Accepted, responses={409: {}, 422: {}})
    async def review(deal_id: str, body: ReviewRequest,
                     caller: Caller = reader) -> Accepted:
        """Answer the deal's pending review; your token's name goes into the audit trail."""
        taken = await take_review(service, queue, deal_id, body.answer(caller.name))
        return Accepted(thread_id=taken.thread_id, deal_id=taken.deal_id,
                        status="waiting_review", job_id=taken.job_id,
                        duplicate=taken.duplicate, note=taken.note)


def _add_view(app: FastAPI, service: DealService, view: str, reader: Any) -> None:
    async def read(deal_id: str, caller: Caller = reader) -> Any:
        return await _in_thread(VIEWS[view], service, deal_id)

    read.__doc__ = f"As `dealflow {view} --json`."
    app.get(f"/v1/deals/{{deal_id}}/{view}", tags=["deals"], name=f"deal_{view}")(read)


def _webhook_routes(app: FastAPI, service: DealService, queue: procrastinate.App) -> None:
    secret = (service.settings.webhook_secret.get_secret_value()
              if service.settings.webhook_secret else None)

    @app.post("/v1/webhooks/esign", status_code=202, tags=["webhooks"],
              responses={200: {}, 401: {}, 404: {}, 409: {}, 422: {}})
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
        taken = await take_event(service, queue, event)  # 409: expired, or reused id
        answer = {"event_id": event.event_id, "deal_id": taken.deal_id, "job_id": taken.job_id}
        if taken.duplicate:
            return JSONResponse({**answer, "duplicate": True}, 200)
        return {**answer, "note": taken.note} if taken.note else answer


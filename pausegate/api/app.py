"""The HTTP API: the only way people act on a pause.

Every route acts as the actor the bearer token proves (see ``gate``); request bodies never
name one. Actions go through ``pausegate.temporal.pauses.act``, whose refusals land in the pause's
timeline; the routes refuse a few things themselves (triggering without a commander role,
reading the scope without a review role) and record those refusals the same way.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import httpx
import structlog
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPBearer
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.client import Client, WorkflowQueryFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError

from pausegate.api.errors import ApiError, Overloaded, refusal_status
from pausegate.api.gate import MAX_BODY_BYTES, Gate
from pausegate.api.limiter import PauseLimiter
from pausegate.api.models import (
    ApproveRequest,
    CompleteRequest,
    DecommissionRequest,
    ErrorBody,
    PauseSummary,
    PauseView,
    Progress,
    Receipt,
    RefusalsView,
    RejectRequest,
    TriggerRequest,
    TriggerResponse,
    WaiveRequest,
    WaiveResidualRequest,
    WhoAmI,
)
from pausegate.api.refusal_log import RefusalEntry, RefusalLog
from pausegate.auth import Authenticator, build_authenticator
from pausegate.config import Settings
from pausegate.errors import ActionRefused, EvidenceError, PauseNotFound, RunbookError
from pausegate.evidence.report import render_markdown
from pausegate.evidence.store import URI_SCHEME, LocalEvidenceStore
from pausegate.models.pause import (
    Actor,
    ApproveInput,
    CompleteItemInput,
    DecommissionInput,
    ItemStatus,
    PauseRequest,
    PauseState,
    ProposePlanInput,
    RefusalInput,
    RejectPlanInput,
    ReportInput,
    ResumePlan,
    Tuning,
    WaiveAgentsInput,
    WaiveResidualInput,
)
from pausegate.policy import authority
from pausegate.runbook.loader import load_runbook
from pausegate.runbook.model import SLUG, Runbook
from pausegate.temporal.pauses import act, pause_handle, read_status, start_pause
from workflows.pause import PauseWorkflow

log = structlog.get_logger(__name__)
T = TypeVar("T")

API_VERSION = "1.0.0"
_SLUG = re.compile(SLUG)

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No bearer token, or one that proves nobody."},
    403: {
        "model": ErrorBody,
        "description": "Authenticated, but the caller's roles do not allow this; recorded in the pause's timeline.",
    },
    404: {"model": ErrorBody, "description": "Unknown program, pause or checklist item."},
    413: {"model": ErrorBody, "description": "Request body too large."},
    422: {
        "model": ErrorBody,
        "description": "Invalid input, or refused by the review policy (missing evidence, "
        "invalid plan, unmet dependency).",
    },
    503: {
        "model": ErrorBody,
        "description": "Temporal unreachable or the pause busy; retry after Retry-After.",
    },
}
_ACTION_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    409: {
        "model": ErrorBody,
        "description": "Conflicts with the pause's state (wrong state, stale digest, already approved, no plan).",
    },
}


@dataclass
class ApiState:
    """What routes share: configuration, the Temporal client, the authenticator, the limiter."""

    settings: Settings
    client: Client
    authenticator: Authenticator
    limiter: PauseLimiter
    tuning: Tuning | None
    evidence_store: LocalEvidenceStore | None = None
    _runbooks: dict[Path, tuple[int, Runbook]] = field(default_factory=dict)

    @property
    def refusals(self) -> RefusalLog:
        return RefusalLog(self.settings.api.refusal_log, self.store.signing_key)

    @property
    def store(self) -> LocalEvidenceStore:
        # Built on first use: generating the OpenAPI document must not touch the evidence directory.
        if self.evidence_store is None:
            ev = self.settings.evidence
            self.evidence_store = ev.open_store()
        return self.evidence_store

    def runbook(self, program: str) -> Runbook:
        """The runbook of ``program`` from the runbooks directory (re-read when it changes)."""
        if not _SLUG.match(program):
            raise ApiError(404, "unknown_program", f"unknown program {program[:80]!r}")
        path = self.settings.api.runbooks_dir / f"{program}.yaml"
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            raise ApiError(404, "unknown_program", f"unknown program {program!r}: no runbook") from None
        cached = self._runbooks.get(path)
        if cached and cached[0] == mtime:
            return cached[1]
        try:
            runbook = load_runbook(path)
        except RunbookError as exc:
            log.error("runbook_invalid", program=program, problems=exc.problems[:10])
            raise ApiError(
                503,
                "runbook_invalid",
                f"the runbook of {program!r} does not validate; run pausegate runbook validate",
            ) from None
        if runbook.program.id != program:
            raise ApiError(
                503,
                "runbook_invalid",
                f"{path.name} describes program {runbook.program.id!r}, not {program!r}",
            )
        self._runbooks[path] = (mtime, runbook)
        return runbook

    def programs(self) -> list[str]:
        directory = self.settings.api.runbooks_dir
        if not directory.is_dir():
            return []
        return sorted(p.stem for p in directory.glob("*.yaml") if _SLUG.match(p.stem))


# ------------------------------------------------------------------ helpers


def _state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


_bearer_scheme = HTTPBearer(auto_error=False, description="A local token (pgt_…) or an OIDC JWT.")


def current_actor(request: Request, _: Annotated[Any, Depends(_bearer_scheme)] = None) -> Actor:
    """The verified actor the gate attached to the request."""
    actor = getattr(request.state, "actor", None)
    if not isinstance(actor, Actor):  # the gate guards every non-public path; this is belt and braces
        raise ApiError(
            401,
            "unauthenticated",
            "send an Authorization: Bearer <token> header",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return actor


ActorDep = Annotated[Actor, Depends(current_actor)]
ProgramPath = Annotated[str, PathParam(max_length=200, description="The program's id (its runbook's program.id).")]


async def _record_refusal(state: ApiState, program: str, actor: Actor, action: str, reason: str) -> None:
    """Put a refusal the API decided in the pause's timeline, or, when no open pause can hold
    it (none yet, ended, or Temporal unreachable), in the API's refusal log."""
    try:
        await pause_handle(state.client, program).signal(
            PauseWorkflow.record_refusal, RefusalInput(actor=actor.id, action=action, reason=reason[:2000])
        )
    except RPCError as exc:
        await asyncio.to_thread(
            state.refusals.append, actor=actor.id, roles=actor.roles, program=program, action=action, reason=reason
        )
        log.info("refusal_logged", program=program, actor=actor.id, action=action, pause_status=str(exc.status))


async def _authorise(state: ApiState, program: str, actor: Actor, action: str, decide: Callable[[], T]) -> T:
    """Run a rule of ``pausegate.policy.authority``; a refusal is recorded, then raised."""
    try:
        return decide()
    except ActionRefused as exc:
        await _record_refusal(state, program, actor, f"refused.{action}", f"{exc.code}: {exc.reason}")
        log.info("action_refused", program=program, actor=actor.id, action=action, code=exc.code)
        raise


def _update_id(actor: Actor, action: str, idempotency_key: str | None) -> str:
    # One id for every attempt of this request: Temporal applies an update id at most once, so a
    # retried request (same Idempotency-Key) or a retried RPC never doubles an action.
    if idempotency_key:
        digest = hashlib.sha256(f"{actor.id}\0{action}\0{idempotency_key}".encode()).hexdigest()[:32]
        return f"api-{digest}"
    return f"api-{uuid.uuid4().hex}"


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="Repeat a request safely: the same key (per actor and action) is applied at most once.",
    ),
]


async def _act(
    state: ApiState, program: str, actor: Actor, action: Any, name: str, idempotency_key: str | None
) -> Receipt:
    update_id = _update_id(actor, name, idempotency_key)
    bound = log.bind(pause=program, actor=actor.id, action=name)
    try:
        receipt = await state.limiter.run(program, lambda: act(state.client, program, action, update_id=update_id))
    except PauseNotFound:
        try:
            status = await read_status(state.client, program)
        except PauseNotFound:
            raise ApiError(404, "no_pause", f"no pause for program {program!r}") from None
        raise ApiError(409, "wrong_state", f"the pause is {status.phase.value} and takes no more actions") from None
    except ActionRefused as exc:
        bound.info("action_refused", code=exc.code)
        raise
    bound.info("action_accepted", phase=receipt.phase.value)
    return Receipt(program=program, state=receipt.phase, message=receipt.message, digest=receipt.digest, actor=actor.id)


def _build(model: type[Any], **fields: Any) -> Any:
    try:
        return model(**fields)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ApiError(422, "invalid_request", "; ".join(problems)[:2000]) from None


async def _perform(
    request: Request, program: str, actor: Actor, name: str, idempotency_key: str | None, model: type[Any],
    **fields: Any,
) -> Receipt:
    """Build the update from the verified actor and the body's fields, and send it to the pause."""
    state = _state(request)
    state.runbook(program)  # 404 for a program without a runbook, before anything reaches Temporal
    return await _act(state, program, actor, _build(model, actor=actor, **fields), name, idempotency_key)


async def _approver_role(request: Request, program: str, actor: Actor, role: str | None, action: str) -> str:
    """The approver role an approval or decommission vote is cast as."""
    state = _state(request)
    runbook = state.runbook(program)
    what = "approving a plan" if action == "approve_plan" else "voting to decommission"
    return await _authorise(state, program, actor, action, lambda: authority.approver_role(runbook, actor, role, what))


# ------------------------------------------------------------------ routes

router = APIRouter(prefix="/v1", responses=_ERRORS)


@router.get("/whoami", response_model=WhoAmI, tags=["auth"])
async def whoami(actor: ActorDep) -> WhoAmI:
    """Who the bearer token says the caller is."""
    return WhoAmI(id=actor.id, roles=list(actor.roles))


@router.post(
    "/pauses",
    response_model=TriggerResponse,
    status_code=201,
    tags=["pauses"],
    responses={
        200: {"model": TriggerResponse, "description": "A pause was already open; it is returned."},
        **_ACTION_ERRORS,
    },
)
async def trigger(body: TriggerRequest, request: Request, response: Response, actor: ActorDep) -> TriggerResponse:
    """Pull the kill switch: pause the program now (201), or return the pause already open (200)."""
    state = _state(request)
    runbook = state.runbook(body.program)
    await _authorise(state, body.program, actor, "trigger",
                     lambda: authority.require_commander(runbook, actor, "starting a pause"))
    pause_request = PauseRequest(
        program=body.program, reason=body.reason, severity=body.severity, commander=actor, runbook=runbook
    )
    _, started = await start_pause(
        state.client, pause_request, task_queue=state.settings.temporal.task_queue, tuning=state.tuning
    )
    status = await read_status(state.client, body.program)
    log.info("pause_triggered" if started else "pause_already_open", pause=body.program, actor=actor.id)
    response.status_code = 201 if started else 200
    return TriggerResponse(started=started, pause=PauseView.of(status))


@router.get("/pauses", response_model=list[PauseSummary], tags=["pauses"])
async def list_pauses(request: Request, actor: ActorDep) -> list[PauseSummary]:
    """The latest pause of every program that has a runbook, open or closed."""
    state = _state(request)
    limit = asyncio.Semaphore(16)

    async def one(program: str) -> PauseState | None:
        async with limit:
            try:
                return await read_status(state.client, program)
            except PauseNotFound:
                return None

    statuses = await asyncio.gather(*(one(p) for p in state.programs()))
    return [
        PauseSummary(
            program=s.program,
            pause_id=s.pause_id,
            incident_id=s.incident_id,
            state=s.phase,
            severity=s.severity,
            commander=s.commander,
            started_at=s.started_at,
            progress=Progress.of(s),
        )
        for s in statuses
        if s is not None
    ]


@router.get("/refusals", response_model=RefusalsView, tags=["audit"], responses=_ERRORS)
async def list_refusals(
    request: Request,
    actor: ActorDep,
    program: Annotated[str | None, Query(max_length=64, description="Only refusals on this program.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="The newest this many.")] = 100,
) -> RefusalsView:
    """Refusals no open pause could hold (admins only), newest last, and whether their chain is intact."""
    state = _state(request)
    refusals = state.refusals
    try:
        authority.require_admin(actor, "reading the refusal log")
    except ActionRefused as exc:
        await asyncio.to_thread(
            refusals.append, actor=actor.id, roles=actor.roles, program=None, action="refused.read_refusals",
            reason=f"{exc.code}: {exc.reason}",
        )
        log.info("action_refused", actor=actor.id, action="read_refusals", code=exc.code)
        raise

    def read() -> RefusalsView:
        kept: deque[RefusalEntry] = deque(maxlen=limit)
        kept.extend(e for e in refusals.entries() if program is None or e.program == program)
        return RefusalsView(entries=list(kept), chain_problems=refusals.problems())

    return await asyncio.to_thread(read)


@router.get("/pauses/{program}", response_model=PauseView, tags=["pauses"])
async def read_pause(
    program: ProgramPath,
    request: Request,
    actor: ActorDep,
    scope: Annotated[
        bool,
        Query(description="Include the recorded exposure scope documents (reviewers, approvers and commanders)."),
    ] = False,
) -> PauseView:
    """State, containment progress, exposure scope, checklist, plan, approvals and timeline."""
    state = _state(request)
    runbook = state.runbook(program)
    status = await read_status(state.client, program)
    scopes: dict[str, dict[str, Any]] | None = None
    who_saw_what: dict[str, Any] | None = None
    if scope:
        await _authorise(state, program, actor, "read_scope", lambda: authority.require_scope_reader(runbook, actor))
        key = status.evidence_key
        scopes = {}
        for d in status.containment.datasets:
            scopes[d.dataset] = await asyncio.to_thread(state.store.read_json, f"{key}/scope/{d.dataset}")
        if status.containment.exposure is not None:
            who_saw_what = await asyncio.to_thread(
                state.store.read_json, status.containment.exposure.report.uri.removeprefix("evidence://")
            )
        log.info("scope_read", pause=program, actor=actor.id, datasets=len(scopes))
    return PauseView.of(status, scopes, who_saw_what)


@router.get("/pauses/{program}/checklist", response_model=list[ItemStatus], tags=["review"])
async def read_checklist(program: ProgramPath, request: Request, actor: ActorDep) -> list[ItemStatus]:
    """The review checklist and who completed what."""
    state = _state(request)
    state.runbook(program)
    return list((await read_status(state.client, program)).checklist)


@router.post("/pauses/{program}/checklist/{item_id}", response_model=Receipt, tags=["review"], responses=_ACTION_ERRORS)
async def complete_item(
    program: ProgramPath,
    item_id: Annotated[str, PathParam(max_length=100)],
    body: CompleteRequest,
    request: Request,
    actor: ActorDep,
    idempotency_key: IdempotencyKey = None,
) -> Receipt:
    """Complete (or amend) a checklist item with its evidence."""
    return await _perform(request, program, actor, "complete_item", idempotency_key, CompleteItemInput,
                          item_id=item_id, evidence=body.evidence, note=body.note)


@router.post("/pauses/{program}/plan", response_model=Receipt, tags=["review"], responses=_ACTION_ERRORS)
async def propose_plan(
    program: ProgramPath,
    body: ResumePlan,
    request: Request,
    actor: ActorDep,
    idempotency_key: IdempotencyKey = None,
) -> Receipt:
    """Propose (or replace) the resume plan; earlier approvals are void."""
    return await _perform(request, program, actor, "propose_plan", idempotency_key, ProposePlanInput, plan=body)


@router.post("/pauses/{program}/plan/reject", response_model=Receipt, tags=["review"], responses=_ACTION_ERRORS)
async def reject_plan(
    program: ProgramPath,
    body: RejectRequest,
    request: Request,
    actor: ActorDep,
    idempotency_key: IdempotencyKey = None,
) -> Receipt:
    """Reject the current plan; it and its approvals are void."""
    return await _perform(request, program, actor, "reject_plan", idempotency_key, RejectPlanInput,
                          reason=body.reason)


@router.post("/pauses/{program}/approvals", response_model=Receipt, tags=["sign-off"], responses=_ACTION_ERRORS)
async def approve_plan(
    program: ProgramPath,
    body: ApproveRequest,
    request: Request,
    actor: ActorDep,
    idempotency_key: IdempotencyKey = None,
) -> Receipt:
    """Approve the current plan and review by the digest the approver reviewed."""
    role = await _approver_role(request, program, actor, body.role, "approve_plan")
    return await _perform(request, program, actor, "approve_plan", idempotency_key, ApproveInput,
                          role=role, digest=body.digest, comment=body.comment)


@router.post("/pauses/{program}/waivers", response_model=Receipt, tags=["containment"], responses=_ACTION_ERRORS)
async def waive_agents(
    program: ProgramPath,
    body: WaiveRequest,
    request: Request,
    actor: ActorDep,
    idempotency_key: IdempotencyKey = None,
) -> Receipt:
    """The commander stops waiting for agents that cannot be reached, with a reason."""
    return await _perform(request, program, actor, "waive_agents", idempotency_key, WaiveAgentsInput,
                          agent_ids=body.agent_ids, all_unconfirmed=body.all_unconfirmed, reason=body.reason)


@router.post(
    "/pauses/{program}/residual-waivers", response_model=Receipt, tags=["containment"], responses=_ACTION_ERRORS
)
async def waive_residual(
    program: ProgramPath,
    body: WaiveResidualRequest,
    request: Request,
    actor: ActorDep,
    idempotency_key: IdempotencyKey = None,
) -> Receipt:
    """The commander accepts a dataset's residual access (superusers, owners), with a reason."""
    return await _perform(request, program, actor, "waive_residual", idempotency_key, WaiveResidualInput,
                          dataset=body.dataset, reason=body.reason)


@router.post("/pauses/{program}/decommission", response_model=Receipt, tags=["sign-off"], responses=_ACTION_ERRORS)
async def decommission(
    program: ProgramPath,
    body: DecommissionRequest,
    request: Request,
    actor: ActorDep,
    idempotency_key: IdempotencyKey = None,
) -> Receipt:
    """Vote to end the program for good (same quorum and separation of duties as a resume)."""
    role = await _approver_role(request, program, actor, body.role, "decommission")
    return await _perform(request, program, actor, "decommission", idempotency_key, DecommissionInput,
                          role=role, reason=body.reason)


@router.get(
    "/pauses/{program}/report",
    tags=["pauses"],
    responses={
        200: {
            "description": "The final report.",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/markdown": {"schema": {"type": "string"}},
            },
        },
        409: {"model": ErrorBody, "description": "The pause has not closed yet."},
    },
)
async def read_report(
    program: ProgramPath,
    request: Request,
    actor: ActorDep,
    format: Annotated[Literal["json", "markdown"], Query()] = "json",
) -> Response:
    """The final report, written when the pause resumes or is decommissioned."""
    state = _state(request)
    state.runbook(program)
    status = await read_status(state.client, program)
    if status.report is None:
        raise ApiError(409, "no_report", f"the pause is {status.phase.value}; the report is written when it closes")
    key = status.report.uri.removeprefix(URI_SCHEME)
    document = await asyncio.to_thread(state.store.read_json, key)
    if format == "markdown":
        return PlainTextResponse(render_markdown(ReportInput.model_validate(document)), media_type="text/markdown")
    return JSONResponse(document)


# ------------------------------------------------------------------ errors


def _error(
    status_code: int,
    code: str,
    detail: str,
    *,
    problems: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(error=code, detail=detail, problems=problems or [])
    return JSONResponse(body.model_dump(), status_code=status_code, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return _error(exc.status, exc.code, exc.detail, problems=exc.problems, headers=exc.headers)

    async def refused(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ActionRefused)
        return _error(refusal_status(exc.code), exc.code, exc.reason)

    async def not_found(_: Request, exc: Exception) -> JSONResponse:
        return _error(404, "no_pause", str(exc))

    async def overloaded(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Overloaded)
        return _error(503, "busy", exc.detail, headers={"Retry-After": str(exc.retry_after)})

    async def temporal_down(_: Request, exc: Exception) -> JSONResponse:
        log.warning("temporal_unavailable", error=str(exc)[:500], kind=type(exc).__name__)
        return _error(
            503,
            "temporal_unavailable",
            "the workflow service did not answer; nothing was applied unless the pause's timeline shows it; retry",
            headers={"Retry-After": "2"},
        )

    async def evidence_error(_: Request, exc: Exception) -> JSONResponse:
        log.error("evidence_unreadable", error=str(exc)[:500])
        return _error(503, "evidence_unavailable", str(exc)[:500], headers={"Retry-After": "5"})


    async def invalid(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors()]
        return _error(422, "invalid_request", "the request does not validate", problems=problems[:50])

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        codes = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}
        return _error(
            exc.status_code,
            codes.get(exc.status_code, "http_error"),
            str(exc.detail),
            headers=dict(exc.headers or {}),
        )

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(ActionRefused, refused)
    app.add_exception_handler(PauseNotFound, not_found)
    app.add_exception_handler(Overloaded, overloaded)
    app.add_exception_handler(RPCError, temporal_down)
    app.add_exception_handler(WorkflowQueryFailedError, temporal_down)
    app.add_exception_handler(WorkflowUpdateRPCTimeoutOrCancelledError, temporal_down)
    app.add_exception_handler(EvidenceError, evidence_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)


# ------------------------------------------------------------------ factory


def create_app(
    settings: Settings,
    client: Client,
    *,
    authenticator: Authenticator | None = None,
    evidence_store: LocalEvidenceStore | None = None,
    tuning: Tuning | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> FastAPI:
    """The API as an ASGI app.

    Args:
        settings: deployment configuration (``api`` section: runbooks, users file, OIDC, update limit).
        client: a Temporal client built by ``pausegate.temporal.client.connect``.
        authenticator: who may call; default: local tokens from ``settings.api.users_file`` plus OIDC
            when ``settings.api.oidc`` is set.
        evidence_store: where reports and scope documents are read; default: ``settings.evidence``.
        tuning: workflow timing for pauses this API starts (tests shrink it).
        max_body_bytes: larger request bodies are answered 413.
    """
    http: httpx.AsyncClient | None = None
    if authenticator is None:
        http = httpx.AsyncClient()
        authenticator = build_authenticator(settings, http)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if http is not None:
                await http.aclose()

    app = FastAPI(
        title="pausegate",
        version=API_VERSION,
        summary="Pause a data-collection program, prove the pause, resume it only after a signed-off review.",
        description=(
            "Every request carries a bearer token (a local token or an OIDC JWT); the verified caller "
            "is the actor of every action. Errors are JSON `{error, detail, problems}`."
        ),
        lifespan=lifespan,
    )
    app.state.api = ApiState(
        settings=settings,
        client=client,
        authenticator=authenticator,
        limiter=PauseLimiter(settings.api.max_updates_in_flight_per_pause),
        tuning=tuning,
        evidence_store=evidence_store,
    )
    _install_error_handlers(app)
    app.include_router(router)

    @app.get("/healthz", tags=["meta"], include_in_schema=True)
    async def healthz() -> dict[str, str]:
        """Liveness (no token needed; says nothing about pauses)."""
        return {"status": "ok"}

    app.add_middleware(Gate, authenticator=authenticator, max_body_bytes=max_body_bytes)
    return app

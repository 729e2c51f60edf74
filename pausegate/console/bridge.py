"""The console's one door into the API's code: what it reads, what it does, and what it may explain.

The console adds no rule of its own (DESIGN.md, "Faces"). Everything here goes through what the
JSON API uses:

- reads: ``read_status`` and ``PauseView.of`` with ``authority.may_read_access`` deciding the
  redaction, exactly as ``GET /v1/pauses/{program}`` does; the report through the API's own route;
- actions: ``pausegate.api.actions`` (admission, rate limits, authorisation, refusals recorded in the
  timeline or the refusal log, the update limiter) and the API's trigger route;
- explanations ("you may complete this", "you cannot approve: …"): the very rule functions the
  workflow's validators run (``pausegate.policy.review``/``authority``), called as a dry run on the
  state just read. They only explain; the workflow decides again when the action is sent.

When the API's plumbing changes shape, this module is what follows it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

import structlog
from fastapi import Response
from pydantic import ValidationError

from pausegate.api import actions
from pausegate.api.handlers import answer_of
from pausegate.api.models import PauseView, Receipt
from pausegate.api.requests import TriggerRequest
from pausegate.api.routes import drills as drill_routes
from pausegate.api.routes import pauses as pause_routes
from pausegate.api.routes.keys import signing_key_of
from pausegate.api.state import ApiState
from pausegate.console.break_glass_reads import GlassReads, glass_reads
from pausegate.console.origins import DerivedCause, derived_cause
from pausegate.errors import ActionRefused, ApiError, EvidenceError
from pausegate.evidence.interface import read_recorded
from pausegate.models.checklist import EvidenceAttachment, ItemStatus
from pausegate.models.drill import DrillState
from pausegate.models.evidence import EvidenceRef
from pausegate.models.people import Actor, Severity
from pausegate.models.plan import ResumePlan
from pausegate.models.runbook import Runbook
from pausegate.models.signatures import DsseEnvelope
from pausegate.models.state import PauseState, TimelineEntry
from pausegate.models.steps import ReportInput
from pausegate.models.updates import ApproveInput, CompleteItemInput, ProposePlanInput, RejectPlanInput
from pausegate.policy import authority, review
from pausegate.temporal.pauses import read_status

log = structlog.get_logger(__name__)


class Refusal(Exception):
    """Why the console could not do or show what was asked, as a page says it: an HTTP status, the
    API's code and its sentence, and the fields at fault for a form that does not validate."""

    def __init__(self, status: int, code: str, reason: str, problems: list[str] | None = None) -> None:
        self.status = status
        self.code = code
        self.reason = reason
        self.problems = problems or []
        super().__init__(f"{status} {code}: {reason}")


def refusal_of(exc: Exception) -> Refusal | None:
    """The ``Refusal`` an error of the API's plumbing stands for, with the status, code and sentence the
    JSON API answers it with (``pausegate.api.handlers.answer_of``); None for a bug, left to propagate."""
    if isinstance(exc, Refusal):
        return exc
    if isinstance(exc, ValidationError):  # a console form that does not build the API's input
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()][:50]
        return Refusal(422, "invalid_request", "the form does not validate", problems)
    answer = answer_of(exc)
    if answer is None:
        return None
    return Refusal(answer.status, answer.code, answer.detail, answer.problems)


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Seen:
    """A pause as one person may see it: the runbook, the actor with the program's roles, the view, and
    the version of the status it was made from (``version_of``)."""

    program: str
    runbook: Runbook
    actor: Actor
    view: PauseView
    version: str = ""
    cause: DerivedCause | None = None
    """The exposure's derived cause from the sealed origin document (reviewers only; None otherwise)."""
    break_glass_reads: GlassReads | None = None
    """Who saw what through break-glass grants, from their sealed reads documents (reviewers only)."""

    @property
    def live(self) -> bool:
        """Whether the page is sent the pause's live events: only to people with a role in the program."""
        return authority.holds_program_role(self.runbook, self.actor)


def version_of(views: Iterable[PauseView | None]) -> str:
    """A digest of pauses as one person sees them: equal exactly when a page and a live stream show the
    same (the stream then sends nothing the page already shows). Made from the views, never the statuses:
    for someone shown a redacted view, a change to what is hidden changes nothing they can observe."""
    digest = hashlib.sha256()
    for view in views:
        digest.update(view.model_dump_json().encode() if view is not None else b"-")
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def view_of(status: PauseState, runbook: Runbook, actor: Actor) -> PauseView:
    """``status`` as ``GET /v1/pauses/{program}`` shows it to ``actor`` (redacted without a review role)."""
    return PauseView.of(status, reveal=authority.may_read_access(runbook, actor))


async def read(api: ApiState, program: str, actor: Actor) -> Seen:
    """The program's pause for ``actor`` (``Refusal`` 404 for an unknown program or no pause)."""
    runbook = api.runbook(program)
    actor = actor.for_program(program)
    return await seen_of(api, program, runbook, actor, await read_status(api.client, program))


async def seen_of(api: ApiState, program: str, runbook: Runbook, actor: Actor, status: PauseState) -> Seen:
    """A status already read, as ``actor`` (already ``for_program``) may see it: the view, and for a
    reviewer the derived cause read from the origin document the pause recorded (as ``?scope=true`` reads it)."""
    view = view_of(status, runbook, actor)
    reviewer = authority.may_read_access(runbook, actor)
    cause = await derived_cause(api.store, view) if reviewer else None
    glass = await glass_reads(api.store, view) if reviewer else None
    return Seen(program, runbook, actor, view, version_of([view]), cause, glass)


async def drill(api: ApiState, program: str, actor: Actor) -> DrillState:
    """The program's latest drill, for a caller with a role in the program (the API's rule)."""
    return await drill_routes.read(program, api, actor.for_program(program))


@dataclass(frozen=True)
class Program:
    """One line of the board: a program with a runbook, and its latest pause if it has one."""

    id: str
    name: str
    view: PauseView | None
    pause_blocked: str | None
    """Why the signed-in person may not start a pause of it (None: they may)."""


async def archived_timeline(api: ApiState, ref: EvidenceRef) -> list[TimelineEntry]:
    """One document of a pause's archived timeline (``PauseState.timeline_archived``), oldest first,
    checked against the digest the pause recorded (``EvidenceError`` otherwise)."""
    document = await read_recorded(api.store, ref)
    if not isinstance(document, list):
        raise EvidenceError(f"{ref.uri} is not a timeline document")
    return [TimelineEntry.model_validate(entry) for entry in document]


def seen_program(program: str, runbook: Runbook, actor: Actor, status: PauseState | None) -> Program:
    """A board line from a status already read (the live feed reads statuses once for every viewer)."""
    actor = actor.for_program(program)
    view = view_of(status, runbook, actor) if status is not None else None
    return Program(program, runbook.program.name, view, trigger_blocked(runbook, actor))


def runbooks(api: ApiState) -> dict[str, Runbook]:
    """Every program with a runbook that validates (a broken one is left off the board, as the API's list does)."""
    found: dict[str, Runbook] = {}
    for program in api.programs():
        try:
            found[program] = api.runbook(program)
        except ApiError as exc:
            log.warning("program_not_listed", program=program, error=exc.code)
    return found


async def report(api: ApiState, program: str, actor: Actor) -> tuple[dict[str, Any], ReportInput | None]:
    """The final report through the API's own route (review roles only; ``no_report`` before it closes):
    the stored document, and that document read as the workflow's report when it parses."""
    response = await pause_routes.read_report(program, api, actor.for_program(program), "json")
    document = json.loads(bytes(response.body))
    try:
        known = {k: v for k, v in document.items() if k in ReportInput.model_fields}
        return document, ReportInput.model_validate(known)
    except ValidationError:
        log.warning("report_not_rendered", program=program)
        return document, None


async def report_markdown(api: ApiState, program: str, actor: Actor) -> str:
    """The report as the API renders it in Markdown."""
    response = await pause_routes.read_report(program, api, actor.for_program(program), "markdown")
    return bytes(response.body).decode()


# --------------------------------------------------------------------------- explaining


def _blocked(decide: Callable[[], object]) -> str | None:
    try:
        decide()
    except ActionRefused as exc:
        return exc.reason
    return None


def trigger_blocked(runbook: Runbook, actor: Actor) -> str | None:
    """Why ``actor`` may not start a pause of the runbook's program (None: they may)."""
    return _blocked(lambda: authority.require_commander(runbook, actor, "starting a pause"))


def report_blocked(seen: Seen) -> str | None:
    """Why the signed-in person may not read the report (it names who had access: review roles only)."""
    return _blocked(lambda: authority.require_scope_reader(seen.runbook, seen.actor))


def completion_blocked(seen: Seen, item: ItemStatus) -> str | None:
    """Why the signed-in person may not complete ``item`` now (None: they may; the form asks for the
    evidence, so missing evidence is not a reason here)."""
    attached = [EvidenceAttachment(name=name, uri="about:blank") for name in item.evidence_required]
    request = CompleteItemInput(actor=seen.actor, item_id=item.id, evidence=attached)
    return _blocked(lambda: review.check_completion(seen.runbook, seen.view.phase, seen.view.checklist, request))


def proposal_blocked(seen: Seen) -> str | None:
    """Why the signed-in person may not propose a plan now."""
    request = ProposePlanInput(actor=seen.actor, plan=ResumePlan())
    return _blocked(lambda: review.check_proposal(seen.runbook, seen.view.phase, request))


def rejection_blocked(seen: Seen) -> str | None:
    """Why the signed-in person may not reject the current plan now."""
    request = RejectPlanInput(actor=seen.actor, reason="-")
    return _blocked(lambda: review.check_rejection(seen.runbook, seen.view.phase, seen.view.plan, request))


@dataclass(frozen=True)
class ApprovalChoice:
    """Whether the signed-in person may approve the current plan, as which roles, or why not."""

    roles: list[str]
    blocked: str | None


def approval_choice(seen: Seen) -> ApprovalChoice:
    """The approver roles the signed-in person may approve the current plan as, or the reason they
    may not (the workflow's own approval rule, run on the current digest)."""
    view = seen.view
    digest = view.approval_digest or "0" * 64
    # The commander's verified email is not in the status; the workflow compares it too when the
    # approval is sent, so this explanation can only miss a refusal, never invent one.
    commander = Actor(id=view.commander)
    try:
        single = authority.approver_role(seen.runbook, seen.actor, None, "approving a plan")
        candidates = [single]
    except ActionRefused as exc:
        if exc.code != "ambiguous_role":
            return ApprovalChoice([], exc.reason)
        candidates = [r for r in seen.runbook.resume_policy.approver_roles if r in seen.actor.roles]
    reasons: list[str] = []
    allowed: list[str] = []
    def check(request: ApproveInput) -> None:
        review.check_approval(seen.runbook, view.phase, commander, view.plan, view.approval_digest, view.approvals,
                              request)

    for role in candidates:
        request = ApproveInput(actor=seen.actor, role=role, digest=digest, comment="-")
        reason = _blocked(partial(check, request))
        if reason is None:
            allowed.append(role)
        else:
            reasons.append(reason)
    return ApprovalChoice(allowed, None if allowed else reasons[0])


# --------------------------------------------------------------------------- acting


async def trigger(
    api: ApiState, program: str, actor: Actor, reason: str, severity: Severity
) -> tuple[bool, list[str]]:
    """Pull the kill switch through the API's trigger route; returns whether this started the pause,
    and what the runbook names that the deployment lacks."""
    body = TriggerRequest(program=program, reason=reason, severity=severity)
    answer = await pause_routes.trigger(body, api, Response(), actor.for_program(program))
    return answer.started, list(answer.problems)


async def complete(
    api: ApiState, program: str, actor: Actor, item_id: str, evidence: list[dict[str, str]], note: str,
    key: str | None,
) -> Receipt:
    """Complete (or amend) a checklist item, as ``POST /v1/pauses/{program}/checklist/{item}``."""
    return await actions.perform(api, program, actor.for_program(program), "complete_item", key, CompleteItemInput,
                                 item_id=item_id, evidence=evidence, note=note)


async def propose(api: ApiState, program: str, actor: Actor, plan: ResumePlan, key: str | None) -> Receipt:
    """Propose (or replace) the resume plan, as ``POST /v1/pauses/{program}/plan``."""
    return await actions.perform(api, program, actor.for_program(program), "propose_plan", key, ProposePlanInput,
                                 plan=plan)


async def reject(api: ApiState, program: str, actor: Actor, reason: str, key: str | None, role: str | None = None,
                 envelope: DsseEnvelope | None = None) -> Receipt:
    """Reject the current plan (with the statement their passkey signed, if any), as
    ``POST /v1/pauses/{program}/plan/reject``."""
    signer = await asyncio.to_thread(signing_key_of, api, envelope)
    return await actions.perform(api, program, actor.for_program(program), "reject_plan", key, RejectPlanInput,
                                 reason=reason, role=role, envelope=envelope, key=signer)


async def approve(
    api: ApiState, program: str, actor: Actor, digest: str, role: str | None, comment: str,
    key: str | None, envelope: DsseEnvelope | None = None,
) -> Receipt:
    """Approve the plan by the digest the person reviewed (with the statement their passkey signed, if any),
    as ``POST /v1/pauses/{program}/approvals``."""
    actor = actor.for_program(program)
    chosen = await actions.approver_role(api, program, actor, role, "approve_plan")
    signer = await asyncio.to_thread(signing_key_of, api, envelope)
    return await actions.perform(api, program, actor, "approve_plan", key, ApproveInput, admitted=True,
                                 role=chosen, digest=digest, comment=comment, envelope=envelope, key=signer)

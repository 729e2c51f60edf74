"""Plan and sign-off: the proposed plan, what it changes against the pre-incident scope, the digest an
approval binds to, the approvals; proposing, approving (with a comment) and rejecting (with a reason)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from pausegate.console import bridge
from pausegate.console.bridge import Refusal, Seen, refusal_of
from pausegate.console.data_action_lines import data_action_line
from pausegate.console.forms import Form, grant_line, plan_from
from pausegate.console.pages import Visitor, VisitorDep, done, posted, render
from pausegate.console.routes.pause import ProgramPath, page_url
from pausegate.console.routes.signing import envelope_from, passkeys_of, rejection_roles
from pausegate.models.plan import Approval

router = APIRouter(prefix="/console/pauses", include_in_schema=False)


@dataclass(frozen=True)
class ApprovalRow:
    approval: Approval
    stale: bool
    """Bound to a digest other than the current one: it no longer counts toward the quorum."""


def plan_context(seen: Seen) -> dict[str, Any]:
    """What the plan page shows (the page and its live fragments alike)."""
    view = seen.view
    current = view.approval_digest
    plan = view.plan.plan if view.plan else None
    return {
        "seen": seen,
        "view": view,
        "now": datetime.now(UTC),
        "record": view.plan,
        "approvals": [ApprovalRow(a, a.digest != current) for a in view.approvals],
        "counted": sum(1 for a in view.approvals if a.digest == current),
        "choice": bridge.approval_choice(seen),
        "passkeys": passkeys_of(view, seen.actor.id) if view.signoff is not None and view.signoff.nonce else [],
        "rejection_roles": rejection_roles(seen),
        "proposal_blocked": bridge.proposal_blocked(seen),
        "rejection_blocked": bridge.rejection_blocked(seen),
        "prefill": {
            "summary": plan.summary if plan else "",
            "conditions": "\n".join(plan.conditions) if plan else "",
            "grants": "\n".join(grant_line(g) for g in plan.grants) if plan else "",
            "agents_mode": plan.agents.mode if plan else "all",
            "agent_ids": "\n".join(plan.agents.agent_ids) if plan else "",
            "data_actions": "\n".join(data_action_line(a) for a in plan.data_actions) if plan else "",
        },
        "tab": "plan",
    }


def plan_url(program: str) -> str:
    return f"{page_url(program)}/plan"


async def _page(request: Request, visitor: Visitor, program: str, *, status: int = 200,
                refusal: Refusal | None = None, form: Form | None = None, posted_to: str | None = None) -> Response:
    try:
        seen = await bridge.read(visitor.api, program, visitor.actor)
    except Exception as exc:
        failed = refusal_of(exc)
        if failed is None:
            raise
        return render(request, visitor, "error.html", status=failed.status, refusal=failed)
    context = plan_context(seen)
    if form is not None and posted_to == "propose":
        # A refused proposal comes back as the person wrote it, to be corrected rather than retyped.
        context["prefill"] = {k: form.get(k) for k in context["prefill"]}
    return render(request, visitor, "plan.html", status=status, refusal=refusal, posted_to=posted_to,
                  posted=dict(form.pairs) if form else {}, **context)


@router.get("/{program}/plan")
async def plan_page(request: Request, visitor: VisitorDep, program: ProgramPath) -> Response:
    return await _page(request, visitor, program)


async def _act(request: Request, program: str, what: str) -> Response:
    visitor, form = await posted(request)
    key = form.get("idempotency_key") or None
    try:
        if what == "propose":
            receipt = await bridge.propose(visitor.api, program, visitor.actor, plan_from(form), key)
            message = f"Plan proposed; approvals now bind to digest {receipt.digest or ''}."
        elif what == "approve":
            comment = form.text("comment", required="A comment")
            role = form.get("role") or None
            envelope = None
            if form.get("assertion"):
                seen = await bridge.read(visitor.api, program, visitor.actor)
                envelope = envelope_from(form, seen.view, seen.actor.id)
            receipt = await bridge.approve(visitor.api, program, visitor.actor, form.text("digest"), role, comment, key,
                                           envelope)
            message = f"Approved. The pause is {receipt.state.value}."
        else:
            reason = form.text("reason", required="A reason")
            envelope = None
            if form.get("assertion"):
                seen = await bridge.read(visitor.api, program, visitor.actor)
                envelope = envelope_from(form, seen.view, seen.actor.id)
            await bridge.reject(visitor.api, program, visitor.actor, reason, key, form.get("role") or None, envelope)
            message = "Plan rejected; it and its approvals are void."
    except Exception as exc:
        refusal = refusal_of(exc)
        if refusal is None:
            raise
        return await _page(request, visitor, program, status=refusal.status, refusal=refusal, form=form,
                           posted_to=what)
    return done(visitor, plan_url(program), message)


@router.post("/{program}/plan")
async def propose(request: Request, program: ProgramPath) -> Response:
    return await _act(request, program, "propose")


@router.post("/{program}/plan/approve")
async def approve(request: Request, program: ProgramPath) -> Response:
    return await _act(request, program, "approve")


@router.post("/{program}/plan/reject")
async def reject(request: Request, program: ProgramPath) -> Response:
    return await _act(request, program, "reject")

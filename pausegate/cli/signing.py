"""Signing an approval from the terminal: the statement built from the pause as the API shows it, signed
with the approver's enrolled SSH key (``pausegate.cli.ssh_signing``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pausegate.api.models import PauseView
from pausegate.approvals.statement import Decision
from pausegate.cli.api_client import PausegateClient
from pausegate.cli.exits import EXIT_REFUSED, EXIT_USAGE, fail
from pausegate.cli.output import out
from pausegate.cli.ssh_signing import SigningFailed, sign_statement
from pausegate.errors import ActionRefused
from pausegate.policy import signoff


def signed_approval(client: PausegateClient, view: PauseView, key: Path, role: str | None, comment: str,
                    *, as_json: bool) -> dict[str, Any]:
    """The DSSE envelope of the caller's approval of the pause's current plan and review, signed with ``key``."""
    return signed_decision(client, view, key, role, comment, "approve", as_json=as_json)[0]


def signed_decision(client: PausegateClient, view: PauseView, key: Path, role: str | None, comment: str,
                    decision: Decision, *, as_json: bool) -> tuple[dict[str, Any], str]:
    """The DSSE envelope of the caller's ``decision`` on the pause's current plan and review (a rejection's
    comment is its reason), signed with ``key``, and the role it is signed as."""
    me = client.whoami().model
    if role is None:
        # The statement names the role before the API could pick one: only a caller with one role may leave it out.
        if len(me.roles) != 1:
            fail(EXIT_USAGE, "name the role to sign as (--role)", as_json=as_json, error="role")
        role = me.roles[0]
    try:
        statement = signoff.statement_to_sign(view, approver_id=me.id, role=role, comment=comment,
                                              at=datetime.now(UTC), decision=decision)
        envelope = sign_statement(key, statement)
    except ActionRefused as exc:
        fail(EXIT_REFUSED, exc.reason, as_json=as_json, error=exc.code)
    except SigningFailed as exc:
        fail(EXIT_USAGE, str(exc), as_json=as_json, error="signing_failed")
    if not as_json:
        out.say("signed with key ", envelope.signatures[0].keyid[:16])
    return envelope.model_dump(mode="json"), role

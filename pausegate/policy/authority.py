"""Who may do what: every "may this actor do this" decision, the API's and the workflow's alike.

Each ``require_*`` function raises ``ActionRefused`` with one phrasing for every role refusal
("<what> is for roles A, B; <actor> has C"), so a person reads the same sentence whatever
face (API, CLI, console) or layer (API, workflow) refused them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pausegate.errors import ActionRefused
from pausegate.models.people import Actor
from pausegate.models.runbook import Runbook

ADMIN_ROLE = "admin"
"""Manages users and reads the API's refusal log; holds no power over any pause by itself."""


def names(values: Iterable[str]) -> str:
    """A list of names for a sentence ("none" when empty)."""
    listed = list(values)
    return ", ".join(listed) if listed else "none"


def role_refusal(what: str, roles: Sequence[str], actor: Actor) -> ActionRefused:
    """The one refusal for an actor without any of ``roles``."""
    return ActionRefused("wrong_role", f"{what} is for roles {names(roles)}; {actor.id} has {names(actor.roles)}")


def require_any(actor: Actor, roles: Sequence[str], what: str) -> None:
    """Refuse unless ``actor`` holds one of ``roles``."""
    if not actor.has_any(list(roles)):
        raise role_refusal(what, roles, actor)


def commander_roles(runbook: Runbook) -> list[str]:
    return list(runbook.roles.commander)


def review_roles(runbook: Runbook) -> list[str]:
    """Everyone with a part in the program's review: checklist roles, proposers, approvers, commanders.
    They may read the exposure scope (who had access, who saw what)."""
    roles = {r for item in runbook.checklist for r in item.roles}
    roles |= set(runbook.resume_policy.approver_roles) | set(runbook.resume_policy.proposer_roles)
    return sorted(roles | set(runbook.roles.commander))


def program_roles(runbook: Runbook) -> list[str]:
    """Every role the runbook gives a part in the program: ``review_roles``, the watch's consent roles and
    the break-glass roles.

    A caller holding none of them has no business with the program's pause: the API refuses every
    action of theirs before it reaches the workflow, and redacts what the pause reveals about access.
    """
    return sorted({*review_roles(runbook), *consent_roles(runbook), *break_glass_roles(runbook)})


def break_glass_roles(runbook: Runbook) -> list[str]:
    """Who may ask for, approve or review break-glass access during a pause."""
    spec = runbook.break_glass
    return [] if spec is None else sorted({*spec.requester_roles, *spec.approver_roles, *spec.reviewer_roles})


def holds_program_role(runbook: Runbook, actor: Actor) -> bool:
    """Whether ``actor`` has any part in the program (see ``program_roles``)."""
    return actor.has_any(program_roles(runbook))


def require_program_role(runbook: Runbook, actor: Actor, what: str) -> None:
    """Refuse a caller with no role in the program's runbook, whatever they ask for."""
    require_any(actor, program_roles(runbook), f"{what} on {runbook.program.id}")


def may_read_access(runbook: Runbook, actor: Actor) -> bool:
    """Whether ``actor`` may see what a pause reveals about access: who had it, who keeps, loses or
    gains it, residual paths, the exposure scope, who saw what, the report (review roles only)."""
    return actor.has_any(review_roles(runbook))


def require_commander(runbook: Runbook, actor: Actor, what: str) -> None:
    """Starting a pause and waiving what containment could not confirm are the commander's."""
    require_any(actor, commander_roles(runbook), what)


def require_scope_reader(runbook: Runbook, actor: Actor) -> None:
    require_any(actor, review_roles(runbook), "reading the exposure scope")


def require_admin(actor: Actor, what: str) -> None:
    require_any(actor, [ADMIN_ROLE], what)


def require_user_admin(actor: Actor, what: str) -> None:
    """Adding, removing and changing the roles of local users, and reading their change log, are the
    admin's (the global role: ``admin`` cannot be held for one program)."""
    require_admin(actor, what)


def require_an_admin_remains(admins_before: Sequence[str], admins_after: Sequence[str], what: str) -> None:
    """Refuse a change to local users that takes the admin role from the last local user holding it:
    nobody could manage local users through the API any more, and the only way back would be editing
    the users file by hand. (Where no local user was an admin, an OIDC admin manages them; nothing to keep.)"""
    if admins_before and not admins_after:
        raise ActionRefused("last_admin", f"{what} would leave no local user with the {ADMIN_ROLE} role")


def approver_role(runbook: Runbook, actor: Actor, requested: str | None, what: str) -> str:
    """The approver role an approval or decommission vote is cast as.

    The named role when one is given (the workflow checks that the actor holds it); otherwise the
    one approver role the actor holds. Refused when the actor holds none, or several and named none.
    """
    if requested is not None:
        return requested
    approvers = list(runbook.resume_policy.approver_roles)
    held = [r for r in approvers if r in actor.roles]
    if not held:
        raise role_refusal(what, approvers, actor)
    if len(held) > 1:
        raise ActionRefused("ambiguous_role", f"{actor.id} holds approver roles {names(held)}; name one as 'role'")
    return held[0]


def history_reader_roles(runbooks: Iterable[Runbook]) -> list[str]:
    """Who may have workflow history decrypted by the API's codec endpoint: the admin and every
    runbook's incident commanders.

    A payload does not say which program it belongs to, so this cannot be a per-program decision:
    whoever may decode one payload may decode every pause's story. So it is given only to roles held
    everywhere (``Actor.roles``; a role held for one program never counts here) whose holders already
    run incidents or the deployment, never to a checklist role of one review.
    """
    roles = {ADMIN_ROLE}
    for runbook in runbooks:
        roles |= set(commander_roles(runbook))
    return sorted(roles)


def require_history_reader(actor: Actor, runbooks: Iterable[Runbook]) -> None:
    """Refuse decoding history payloads to anyone but ``history_reader_roles``."""
    require_any(actor, history_reader_roles(runbooks), "decoding workflow history")


def require_history_writer(actor: Actor) -> None:
    """Encoding payloads (the codec endpoint's ``/encode``) is the admin's alone.

    A payload sealed with the deployment's key is one the worker accepts as written by pausegate: with
    namespace access besides, an encoder could send a pause an update in anyone's name. Decoding only
    reveals; encoding forges, so it is not given to history readers.
    """
    require_any(actor, [ADMIN_ROLE], "encoding workflow history payloads")


def consent_roles(runbook: Runbook) -> list[str]:
    """Roles that may record an employee's withdrawn consent while a resumed program is watched."""
    return list(runbook.watch.consent_roles) if runbook.watch is not None else []


def require_consent_officer(runbook: Runbook, actor: Actor) -> None:
    """Withdrawing an employee's consent during the watch is the runbook's consent roles' (privacy)."""
    require_any(actor, consent_roles(runbook), "withdrawing consent during the watch")

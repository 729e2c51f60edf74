"""Who may write under the evidence prefix: the bucket's policy, read and checked before the store opens.

Object Lock keeps what the store wrote; it does nothing about names someone else writes first. In
one AWS account an identity policy alone can grant ``s3:PutObject`` on the bucket, so a bucket
policy that merely allows the worker is not enough: it must *deny* writes under the prefix to every
principal but the worker's (a ``Deny`` with ``Principal: "*"`` and an ``ArnNotEquals`` /
``StringNotEquals`` on ``aws:PrincipalArn``, or a ``NotPrincipal`` naming the worker), and must not
allow writes there to anyone else. The store refuses to open otherwise, naming what is wrong
(docs/evidence-store.md has the policy to set).

The check reads the policy; S3 enforces it. Patterns in the policy are matched with a plain
wildcard matcher (no regular expressions): ``*`` any run of characters, ``?`` one.
"""

from __future__ import annotations

import json
from typing import Any

from pausegate.errors import EvidenceError
from pausegate.evidence.s3_objects import Bucket

# what lets a principal create or change an object's name or lock; PutObject is the one that squats
WRITE_ACTIONS = (
    "s3:PutObject",
    "s3:PutObjectRetention",
    "s3:PutObjectLegalHold",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:BypassGovernanceRetention",
)
SQUATTING_ACTION = "s3:PutObject"
_PRINCIPAL_KEY = "aws:principalarn"
_EXCLUDING_OPERATORS = frozenset({"ArnNotEquals", "ArnNotLike", "StringNotEquals", "StringNotLike"})
MAX_POLICY_BYTES = 20 * 1024  # S3's own limit on a bucket policy


async def check_writers(bucket: Bucket, prefix: str, principal: str | None) -> None:
    """Refuse (``EvidenceError``) unless ``bucket``'s policy lets only ``principal`` write under ``prefix``."""
    where = bucket.url(prefix)
    if principal is None:
        raise EvidenceError(
            f"evidence.s3.writer_principal is not set: the store cannot check that only the worker writes under "
            f"{where} (set it to the worker's principal ARN; docs/evidence-store.md)"
        )
    problems = policy_problems(await bucket.policy(), bucket.name, prefix, principal)
    if problems:
        raise EvidenceError(
            f"evidence bucket {bucket.name!r} lets others than {principal} write under {where}: "
            + "; ".join(problems) + " (set the bucket policy in docs/evidence-store.md)"
        )


def policy_problems(text: str | None, bucket: str, prefix: str, principal: str) -> list[str]:
    """Why the policy ``text`` does not keep everyone but ``principal`` from writing under ``prefix``
    (empty: it does)."""
    if text is None:
        return ["it has no bucket policy"]
    if len(text) > MAX_POLICY_BYTES:
        return ["its policy is larger than S3 accepts"]
    try:
        document = json.loads(text)
    except ValueError:
        return ["its policy is not JSON"]
    statements = document.get("Statement") if isinstance(document, dict) else None
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list):
        return ["its policy has no Statement list"]
    target = f"arn:aws:s3:::{bucket}/{prefix}"
    problems: list[str] = []
    denied = False
    for n, statement in enumerate(statements):
        if not isinstance(statement, dict):
            problems.append(f"statement {n} is not an object")
            continue
        name = f"statement {statement.get('Sid') or n!s}"
        effect = statement.get("Effect")
        if effect == "Allow":
            if _writes(statement) and _touches(statement, target):
                others = _other_principals(statement, principal)
                if others:
                    problems.append(f"{name} allows writing there to {', '.join(others)}")
        elif effect == "Deny" and _denies_all_but(statement, target, principal):
            denied = True
    if not denied:
        problems.append(
            f"no statement denies {SQUATTING_ACTION} on {target}* to every principal but {principal} "
            "(without it, any identity whose IAM policy allows writing to the bucket can)"
        )
    return problems


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _writes(statement: dict[str, Any]) -> bool:
    if "NotAction" in statement:
        excluded = _strings(statement["NotAction"])
        return any(not any(_matches(p.lower(), a.lower()) for p in excluded) for a in WRITE_ACTIONS)
    return any(_matches(p.lower(), a.lower()) for p in _strings(statement.get("Action")) for a in WRITE_ACTIONS)


def _touches(statement: dict[str, Any], target: str) -> bool:
    """Whether a resource of the statement can name an object under the prefix."""
    if "NotResource" in statement:
        return True  # everything but some names: assume the prefix is among what it grants
    return any(_reachable(p, target) for p in _strings(statement.get("Resource")))


def _other_principals(statement: dict[str, Any], principal: str) -> list[str]:
    if "NotPrincipal" in statement:
        return ["every principal but those NotPrincipal names"]
    value = statement.get("Principal")
    if value == "*":
        return ["'*'"]
    if not isinstance(value, dict):
        return [repr(value)] if value is not None else []
    others: list[str] = []
    for kind, names in value.items():
        for name in _strings(names) or [repr(names)]:
            if kind != "AWS" or name != principal:
                others.append("'*'" if name == "*" else f"{kind} {name}")
    return others


def _denies_all_but(statement: dict[str, Any], target: str, principal: str) -> bool:
    """Whether the ``Deny`` statement stops every principal but ``principal`` from ``s3:PutObject``
    on every name under the prefix, whatever else holds (no condition but the principal's)."""
    if "NotAction" in statement or "NotResource" in statement:
        return False
    if not any(_matches(p.lower(), SQUATTING_ACTION.lower()) for p in _strings(statement.get("Action"))):
        return False
    if not any(_covers(p, target) for p in _strings(statement.get("Resource"))):
        return False
    condition = statement.get("Condition")
    if "NotPrincipal" in statement:
        excepted = statement["NotPrincipal"]
        return (condition is None and isinstance(excepted, dict) and set(excepted) == {"AWS"}
                and _strings(excepted["AWS"]) == [principal])
    if statement.get("Principal") not in ("*", {"AWS": "*"}) or not isinstance(condition, dict):
        return False
    if len(condition) != 1:
        return False
    operator, tests = next(iter(condition.items()))
    if operator not in _EXCLUDING_OPERATORS or not isinstance(tests, dict) or len(tests) != 1:
        return False
    key, value = next(iter(tests.items()))
    return isinstance(key, str) and key.lower() == _PRINCIPAL_KEY and _strings(value) == [principal]


# ------------------------------------------------------------------ wildcards, without backtracking


def _advance(pattern: str, states: set[int], char: str | None) -> set[int]:
    """The pattern positions reachable from ``states`` after reading ``char`` (None: before reading)."""
    closed = set(states)
    stack = list(states)
    while stack:  # a '*' may match nothing
        p = stack.pop()
        if p < len(pattern) and pattern[p] == "*" and p + 1 not in closed:
            closed.add(p + 1)
            stack.append(p + 1)
    if char is None:
        return closed
    step: set[int] = set()
    for p in closed:
        if p < len(pattern):
            if pattern[p] == "*":
                step.add(p)
            elif pattern[p] == "?" or pattern[p] == char:
                step.add(p + 1)
    return _advance(pattern, step, None)


def _after(pattern: str, text: str) -> set[int]:
    states = _advance(pattern, {0}, None)
    for char in text:
        if not states:
            break
        states = _advance(pattern, states, char)
    return states


def _matches(pattern: str, text: str) -> bool:
    return len(pattern) in _after(pattern, text)


def _reachable(pattern: str, target: str) -> bool:
    """Whether ``pattern`` matches some name starting with ``target``."""
    return bool(_after(pattern, target))


def _covers(pattern: str, target: str) -> bool:
    """Whether ``pattern`` matches every name starting with ``target``."""
    return any(pattern[p:] and set(pattern[p:]) == {"*"} for p in _after(pattern, target))


def writers_policy(bucket: str, prefix: str, principal: str) -> dict[str, Any]:
    """A bucket policy that passes the check: writes under the prefix denied to all but ``principal``,
    and allowed to it (docs/evidence-store.md shows the same)."""
    objects = f"arn:aws:s3:::{bucket}/{prefix}*"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "OnlyTheWorkerWritesEvidence",
                "Effect": "Deny",
                "Principal": "*",
                "Action": list(WRITE_ACTIONS),
                "Resource": objects,
                "Condition": {"ArnNotEquals": {"aws:PrincipalArn": principal}},
            },
            {
                "Sid": "TheWorkerWritesEvidence",
                "Effect": "Allow",
                "Principal": {"AWS": principal},
                "Action": ["s3:PutObject", "s3:PutObjectRetention"],
                "Resource": objects,
            },
        ],
    }

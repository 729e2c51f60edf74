"""What every request shares (``ApiState``): configuration, clients, limits, where the records are kept
(``pausegate.api.backends``), the refusal recorder, and the runbook cache (each runbook checked against
the deployment when loaded)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from temporalio.client import Client

from pausegate.api.backends import Backends
from pausegate.api.deployment import deployment_problems
from pausegate.api.errors import ApiError
from pausegate.api.limiter import PauseLimiter
from pausegate.api.limits import ActionLimits
from pausegate.api.rate_limits.limiter import RateLimiter
from pausegate.api.refusal_log import RefusalLog
from pausegate.api.refusals import RefusalRecorder
from pausegate.auth.base import Authenticator
from pausegate.auth.users.store import UserStore
from pausegate.config import Settings
from pausegate.errors import EvidenceError, RunbookError
from pausegate.evidence.interface import EvidenceStore
from pausegate.models.runbook import SLUG, Runbook
from pausegate.models.state import Tuning
from pausegate.runbook.loader import load_runbook

log = structlog.get_logger(__name__)

# fullmatch, not match: SLUG ends in ``$``, which Python's re also matches before a final newline.
_SLUG = re.compile(SLUG)


@runtime_checkable
class HoldsSigningKey(Protocol):
    """The one thing the refusal log needs of the evidence store beyond ``EvidenceStore``: the
    deployment's evidence key, so the log's head is signed by the same key as the evidence."""

    @property
    def signing_key(self) -> Ed25519PrivateKey: ...


@dataclass
class _Loaded:
    mtime: int
    runbook: Runbook
    problems: list[str]


@dataclass
class ApiState:
    """What routes share: configuration, the Temporal client, the authenticator, the limits, where the
    records are kept, the refusal recorder."""

    settings: Settings
    client: Client
    authenticator: Authenticator
    limiter: PauseLimiter
    tuning: Tuning | None
    backends: Backends
    evidence_store: EvidenceStore | None = None
    limits: ActionLimits = field(default_factory=ActionLimits)
    recorder: RefusalRecorder = field(init=False)
    _runbooks: dict[Path, _Loaded] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.recorder = RefusalRecorder(self.client, lambda: self.refusals)

    @property
    def rate_limiter(self) -> RateLimiter:
        return self.backends.rate_limiter

    @property
    def signing_key(self) -> Ed25519PrivateKey:
        store = self.store
        if not isinstance(store, HoldsSigningKey):
            raise EvidenceError("the evidence store holds no signing key for the API's logs")
        return store.signing_key

    @property
    def refusals(self) -> RefusalLog:
        """The refusal log, where this deployment keeps it."""
        return self.backends.refusals(self.signing_key)

    def users(self) -> UserStore:
        """Local users and their change log, where this deployment keeps them."""
        return self.backends.users(self.signing_key)

    @property
    def store(self) -> EvidenceStore:
        # Built on first use: generating the OpenAPI document must not touch the evidence directory.
        if self.evidence_store is None:
            ev = self.settings.evidence
            from pausegate.evidence.open_store import open_evidence_store

            self.evidence_store = open_evidence_store(ev)
        return self.evidence_store

    def runbook(self, program: str) -> Runbook:
        """The runbook of ``program`` from the runbooks directory (re-read when it changes)."""
        return self._load(program).runbook

    def runbook_problems(self, program: str) -> list[str]:
        """What the runbook of ``program`` names that this deployment lacks (see ``deployment``)."""
        return list(self._load(program).problems)

    def _load(self, program: str) -> _Loaded:
        if not _SLUG.fullmatch(program):
            raise ApiError(404, "unknown_program", f"unknown program {program[:80]!r}")
        path = self.settings.api.runbooks_dir / f"{program}.yaml"
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            raise ApiError(404, "unknown_program", f"unknown program {program!r}: no runbook") from None
        cached = self._runbooks.get(path)
        if cached and cached.mtime == mtime:
            return cached
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
        problems = deployment_problems(runbook, self.settings)
        if problems:
            log.warning("runbook_deployment_problems", program=program, problems=problems[:10])
        loaded = self._runbooks[path] = _Loaded(mtime, runbook, problems)
        return loaded

    def programs(self) -> list[str]:
        directory = self.settings.api.runbooks_dir
        if not directory.is_dir():
            return []
        return sorted(p.stem for p in directory.glob("*.yaml") if _SLUG.fullmatch(p.stem))

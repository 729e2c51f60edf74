"""Telling a key's holder of every change to their keys, through the deployment's chat webhook.

A holder who is told that a key was enrolled, confirmed or removed in their name is how a key someone
else slipped in is noticed, so a notice is never silently dropped: it is sent after the change's line is
in the enrollment log (a notice never holds up or undoes the log), retried with backoff while the webhook
is unavailable, and one that still cannot be delivered is logged and recorded as a line of its own
signed chained log (``key-notices``), which ``GET /v1/keys`` reports among the log's problems.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Literal

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import Field

from pausegate.approvals.enrollment import EnrollmentAction, KeyChange
from pausegate.config import Settings
from pausegate.connectors.interfaces import Notifier
from pausegate.connectors.webhook import notifier_from_connection
from pausegate.errors import ConfigError, TargetUnavailableError, UnknownConnectionError
from pausegate.models.base import Model
from pausegate.records.files import FileMedium
from pausegate.records.log import ChainLog, ChainMedium

log = structlog.get_logger(__name__)

NOTICES_FILE = "key-notices.jsonl"
NOTICES_LOG = "key-notices"
"""The log of undelivered notices in the API's database."""

_sending: set[asyncio.Task[bool]] = set()
"""Notices being sent, by every ``KeyNotices`` of this process."""

_WHAT = {"key.enrolled": "was enrolled", "key.confirmed": "was confirmed", "key.removed": "was removed"}


class UndeliveredNotice(Model):
    """A notice to a key's holder that could not be delivered: one line of the ``key-notices`` log."""

    at: datetime
    action: EnrollmentAction
    key_id: str = Field(pattern=r"^[0-9a-f]{64}$")
    holder: str = Field(max_length=512)
    by: str = Field(max_length=512)
    changed_at: datetime = Field(description="When the change the notice tells of was made.")
    attempts: int = Field(ge=0)
    reason: str = Field(max_length=500)
    outcome: Literal["undelivered"] = "undelivered"
    prev: str


def notices_path(users_file: Path) -> Path:
    """The undelivered notices' log beside the users file."""
    return Path(users_file).with_name(NOTICES_FILE)


def notice(change: KeyChange) -> tuple[str, dict[str, str]]:
    """The message telling ``change.holder`` of ``change``, and its fields (``to`` names the holder)."""
    by = "you" if change.by == change.holder else change.by
    text = (f"To {change.holder}: your signing key {change.key_id[:16]}… {_WHAT[change.action]} by {by} at "
            f"{change.at.isoformat(timespec='seconds')}. If this was not you or not expected, tell security "
            f"and remove the key: pausegate keys remove {change.key_id}")
    fields = {"to": change.holder, "event": change.action, "key": change.key_id, "by": change.by}
    if change.holder_email:
        fields["email"] = change.holder_email
    return text, fields


def chat_notifier(settings: Settings) -> tuple[Notifier | None, str]:
    """The notifier key notices go through: ``api.key_notices``, else the only webhook connection; with
    none, (None, why)."""
    name = settings.api.key_notices
    if name is None:
        hooks = sorted(n for n, c in settings.connections.items() if c.kind == "webhook")
        if len(hooks) != 1:
            return None, (f"no webhook connection for key notices (api.key_notices unset, {len(hooks)} webhook "
                          "connections configured)")
        name = hooks[0]
    try:
        return notifier_from_connection(settings.webhook(name)), ""
    except (ConfigError, UnknownConnectionError) as exc:
        return None, str(exc)[:300]


class KeyNotices:
    """Sends notices through ``notifier`` (None: none configured; every notice is then recorded as
    undelivered), retrying an unavailable webhook ``attempts`` times with backoff from ``backoff``
    seconds, and records what is not delivered in ``undelivered``."""

    def __init__(self, notifier: Notifier | None, undelivered: ChainMedium, key: Ed25519PrivateKey,
                 now: Callable[[], datetime], *, why_none: str = "no notifier configured", attempts: int = 5,
                 backoff: float = 1.0) -> None:
        self.notifier = notifier
        self.why_none = why_none
        self.log: ChainLog[UndeliveredNotice] = ChainLog(undelivered, key, UndeliveredNotice.model_validate,
                                                         "an undelivered key notice")
        self.now = now
        self.attempts = attempts
        self.backoff = backoff

    @classmethod
    def file(cls, path: Path, notifier: Notifier | None, key: Ed25519PrivateKey,
             now: Callable[[], datetime], **options: float | int | str) -> KeyNotices:
        return cls(notifier, FileMedium(path), key, now, **options)  # type: ignore[arg-type]

    def tell(self, change: KeyChange) -> asyncio.Task[bool]:
        """Send the notice of ``change`` in the background (the caller's answer does not wait on chat)."""
        task = asyncio.create_task(self.deliver(change))
        _sending.add(task)  # held until done: the loop keeps only weak references to tasks
        task.add_done_callback(_sending.discard)
        return task

    async def deliver(self, change: KeyChange) -> bool:
        """Send the notice of ``change``; False when it was recorded as undelivered instead."""
        text, fields = notice(change)
        attempts, reason = 0, self.why_none
        while self.notifier is not None and attempts < self.attempts:
            attempts += 1
            try:
                await self.notifier.send(text, fields)
                log.info("key_notice_sent", action=change.action, key_id=change.key_id, holder=change.holder)
                return True
            except TargetUnavailableError as exc:
                reason = str(exc)[:300]
                if attempts < self.attempts:
                    await asyncio.sleep(self.backoff * 2 ** (attempts - 1))
            except Exception as exc:  # refused, or broken: sending again cannot help
                reason = f"{type(exc).__name__}: {str(exc)[:280]}"
                break
        await asyncio.to_thread(self._record, change, attempts, reason)
        return False

    def _record(self, change: KeyChange, attempts: int, reason: str) -> None:
        log.error("key_notice_undelivered", action=change.action, key_id=change.key_id, holder=change.holder,
                  attempts=attempts, reason=reason)
        try:
            self.log.append(lambda prev: UndeliveredNotice(
                at=self.now(), action=change.action, key_id=change.key_id, holder=change.holder, by=change.by,
                changed_at=change.at, attempts=attempts, reason=reason, prev=prev))
        except Exception as exc:  # the log line above still says it; nothing else is left to try
            log.error("key_notice_unrecorded", key_id=change.key_id, error=str(exc)[:300])

    def problems(self) -> list[str]:
        """The undelivered notices, one sentence each, and whatever is wrong with their log."""
        told = [f"{n.holder[:80]} was not told that key {n.key_id[:12]}… {_WHAT[n.action]} by {n.by[:80]} at "
                f"{n.changed_at.isoformat(timespec='seconds')} ({n.attempts} attempt(s): {n.reason[:200]})"
                for n in self.log.entries()]
        with self.log.medium.read() as stored:
            present = stored.lines is not None
        return told + (self.log.problems() if present else [])



async def drain() -> None:
    """Wait for the notices this process is still sending (at shutdown)."""
    while _sending:
        await asyncio.gather(*list(_sending), return_exceptions=True)

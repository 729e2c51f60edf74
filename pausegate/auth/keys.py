"""The keys people sign approvals with, and their enrollment log.

A holder enrolls their own key while signed in; an admin other than the holder confirms it; the holder
or an admin removes it. Every one of these is a line of a signed, hash-chained log (the chained-log
rule of ``pausegate.records``: ``keys-log.jsonl`` beside the users file, its signed head beside it), and
what the lines say is replayed by one pure rule (``pausegate.approvals.enrollment.replay``) here, when a
pause pins its key ring, and offline, when its approvals are verified from the evidence.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from pausegate.approvals import sshsig
from pausegate.approvals.enrollment import KeyChange, line_digest, replay
from pausegate.errors import ActionRefused
from pausegate.models.people import Actor
from pausegate.models.signatures import MAX_RING_KEYS, EnrolledKey, KeyKind, KeyRing
from pausegate.policy.authority import require_admin
from pausegate.records.chain import GENESIS
from pausegate.records.files import FileMedium
from pausegate.records.log import ChainLog, ChainMedium

log = structlog.get_logger(__name__)

LOG_FILE = "keys-log.jsonl"
LOG_NAME = "keys"
"""The enrollment log's name in the API's database."""


def keys_log_path(users_file: Path) -> Path:
    """The enrollment log beside the users file."""
    return Path(users_file).with_name(LOG_FILE)


def ssh_key(public_key_line: str) -> tuple[str, str]:
    """(key id, wire blob base64) of an OpenSSH public key line; ``ValueError`` naming what is wrong."""
    blob = sshsig.key_blob(public_key_line)
    return sshsig.key_id(blob), base64.b64encode(blob).decode()


def passkey_id(cose_key_b64url: str) -> str:
    """A passkey's key id: SHA-256 of its COSE public key."""
    return hashlib.sha256(base64.urlsafe_b64decode(cose_key_b64url + "=" * (-len(cose_key_b64url) % 4))).hexdigest()


class KeyEnrollment:
    """The enrollment log in ``medium`` (a file beside the users file, or the ``keys`` log of the API's
    database shared by replicas), its head signed with the deployment's ``key``; ``now`` is the clock."""

    def __init__(self, medium: ChainMedium, key: Ed25519PrivateKey, now: Callable[[], datetime]) -> None:
        self.medium = medium
        self.log: ChainLog[KeyChange] = ChainLog(medium, key, KeyChange.model_validate, "a key change")
        self.now = now

    @classmethod
    def file(cls, path: Path, key: Ed25519PrivateKey, now: Callable[[], datetime]) -> KeyEnrollment:
        return cls(FileMedium(path), key, now)

    # ------------------------------------------------------------ reading

    def lines(self) -> Iterator[tuple[KeyChange, str]]:
        """Each change with its line's digest, oldest first (lines that are not changes are skipped here;
        ``problems`` names them)."""
        with self.medium.read() as stored:
            for _, line in stored.lines or ():
                try:
                    yield KeyChange.model_validate(json.loads(line)), line_digest(line)
                except (ValueError, ValidationError):
                    continue

    def keys(self) -> dict[str, EnrolledKey]:
        return replay(self.lines())

    def problems(self) -> list[str]:
        return self.log.problems()

    def ring(self, pinned_at: datetime, *, rp_id: str | None, origins: list[str]) -> KeyRing:
        """The key ring a pause starting now pins: every key enrolled and not removed, and where the log
        ended (so that anyone holding the log can find the lines it was pinned from)."""
        changes = list(self.lines())
        keys = list(replay(changes).values())
        if len(keys) > MAX_RING_KEYS:
            # Fails closed: a key left out signs nothing for this pause (refused as not enrolled for it).
            log.error("key_ring_truncated", enrolled=len(keys), pinned=MAX_RING_KEYS)
        return KeyRing(pinned_at=pinned_at, log_lines=len(changes), log_last=changes[-1][1] if changes else GENESIS,
                       rp_id=rp_id, origins=origins, keys=keys[-MAX_RING_KEYS:])

    # ------------------------------------------------------------ changing

    def enroll(self, holder: Actor, kind: KeyKind, key_id: str, public_key: str,
               credential_id: str | None = None) -> KeyChange:
        """``holder`` enrolls their own key; it counts once an admin other than them confirms it."""
        with self.log.held() as held:
            if key_id in self.keys():
                raise ActionRefused("key_exists", f"key {key_id[:12]}… is already enrolled")
            return held.append(lambda prev: KeyChange(
                at=self.now(), action="key.enrolled", by=holder.id, key_id=key_id, holder=holder.id,
                holder_email=holder.email, kind=kind, public_key=public_key, credential_id=credential_id,
                prev=prev))

    def confirm(self, admin: Actor, key_id: str) -> KeyChange:
        """An admin other than the key's holder confirms it."""
        require_admin(admin, "confirming an enrolled key")
        with self.log.held() as held:
            key = self._key(key_id)
            if admin.id == key.holder:
                raise ActionRefused("separation_of_duties", "a key's holder may not confirm their own key")
            if admin.id in key.confirmed_by:
                raise ActionRefused("duplicate_confirmation", f"{admin.id} has already confirmed this key")
            return held.append(lambda prev: KeyChange(at=self.now(), action="key.confirmed", by=admin.id,
                                                      key_id=key_id, holder=key.holder, prev=prev))

    def remove(self, actor: Actor, key_id: str) -> KeyChange:
        """The holder, or an admin, removes a key; it counts for no pause that pins its ring afterwards."""
        with self.log.held() as held:
            key = self._key(key_id)
            if actor.id != key.holder:
                require_admin(actor, "removing someone else's key")
            return held.append(lambda prev: KeyChange(at=self.now(), action="key.removed", by=actor.id,
                                                      key_id=key_id, holder=key.holder, prev=prev))

    def _key(self, key_id: str) -> EnrolledKey:
        key = self.keys().get(key_id)
        if key is None:
            raise ActionRefused("no_such_key", f"no enrolled key {key_id[:16]}")
        return key

"""Logs written before the chained-log rule moved to ``pausegate.records`` still verify, byte for byte, and
grow on: ``legacy/`` holds a refusal log (with a break recorded) and a users file with its change log,
written by the earlier implementation with a fixed key."""

from __future__ import annotations

import base64
import shutil
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pausegate.api.refusal_log import RefusalLog
from pausegate.auth.local import LocalUser
from pausegate.auth.users import postgres as users_pg
from pausegate.auth.users.file import UserDirectory
from pausegate.auth.users.postgres import ROW_DOMAIN, RowSignatures
from pausegate.evidence.signing_keys import verify_signature
from pausegate.records import chain
from pausegate.records.files import FileMedium

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
LEGACY = Path(__file__).with_name("legacy")


def copied(tmp_path: Path) -> Path:
    target = tmp_path / "legacy"
    shutil.copytree(LEGACY, target)
    return target


def test_an_earlier_refusal_log_verifies_and_grows_on(tmp_path: Path) -> None:
    path = copied(tmp_path) / "api-refusals.jsonl"
    log = RefusalLog.file(path, KEY)
    recorded_break = [f"{path}: when line 3 was appended, the log did not end where its signed head said "
                      "(changed outside the API)"]
    assert log.problems() == recorded_break
    assert [(e.actor, e.count) for e in log.entries()] == [("local:user0", 1), ("local:user1", 2), ("local:eve", 1)]
    head = FileMedium(path).read_head()
    log.append(actor="local:ann", roles=["b", "a"], program="p", action="refused.trigger", reason="again")
    assert log.problems() == recorded_break  # the old break stays; the new line links and is vouched for
    grown = FileMedium(path).read_head()
    assert grown is not None and grown.lines == 4 and grown != head
    assert path.read_bytes().count(b"\n") == 4


def test_an_earlier_users_file_and_its_change_log_verify_and_grow_on(tmp_path: Path) -> None:
    users = UserDirectory(copied(tmp_path) / "users.json", KEY)
    assert users.problems() == []
    assert users.check() is None  # the file is what the log's newest line says
    assert [e.action for e in users.log.entries()] == ["user.added", "user.added", "user.roles_changed",
                                                       "user.removed"]
    users.issue(None, "bob", ["cto"])
    view = users.view(100)
    assert view.chain_problems == [] and view.outside_changes == 0 and len(view.entries) == 5


def test_heads_and_user_rows_signed_now_carry_their_domain_and_those_signed_before_still_verify(
    tmp_path: Path,
) -> None:
    public = KEY.public_key()
    path = copied(tmp_path) / "api-refusals.jsonl"
    old = FileMedium(path).read_head()
    assert old is not None and chain.head_signed(old, public)  # a head of before the domain
    log = RefusalLog.file(path, KEY)
    log.append(actor="local:ann", roles=["a"], program="p", action="refused.trigger", reason="again")
    head = FileMedium(path).read_head()
    assert head is not None and chain.head_signed(head, public)
    part = chain.ChainHead.signed_part(head.lines, head.last, head.breaks)
    signature = base64.b64decode(head.signature)
    assert verify_signature(public, signature, chain.HEAD_DOMAIN + part)
    assert not verify_signature(public, signature, part)  # not a signature of the bare message

    rows = RowSignatures(KEY)
    user = LocalUser(name="ann", roles=["ciso"], token_sha256="0" * 64, created_at=datetime(2026, 1, 1, tzinfo=UTC))
    signed = rows.sign(user)
    assert rows.valid(user, signed)
    assert verify_signature(public, base64.b64decode(signed), ROW_DOMAIN + users_pg.signed_part(user))
    assert not verify_signature(public, base64.b64decode(signed), users_pg.signed_part(user))
    before = base64.b64encode(KEY.sign(users_pg.signed_part(user))).decode()
    assert rows.valid(user, before)  # a row signed before; it proves someone only where the log vouches for it

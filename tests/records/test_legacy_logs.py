"""Logs written before the chained-log rule moved to ``pausegate.records`` still verify, byte for byte, and
grow on: ``legacy/`` holds a refusal log (with a break recorded) and a users file with its change log,
written by the earlier implementation with a fixed key."""

from __future__ import annotations

import shutil
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pausegate.api.refusal_log import RefusalLog
from pausegate.auth.users.file import UserDirectory
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
    assert (FileMedium(path).read_head() or head).lines == 4
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

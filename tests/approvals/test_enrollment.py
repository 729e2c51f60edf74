"""The enrollment log, one suite on both media (a file beside the users file; the API database's ``keys``
log that replicas share): holders enroll, another admin confirms, removals, the ring a pause pins, and the
log read back offline as the pause pinned it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pausegate.apidb.database import ApiDatabase
from pausegate.approvals.offline import Findings, check_ring, read_log
from pausegate.auth.keys import LOG_NAME, KeyEnrollment, passkey_id, ssh_key
from pausegate.errors import ActionRefused
from pausegate.models.people import Actor
from pausegate.records.files import FileMedium
from pausegate.records.postgres import PgMedium
from tests.support.signing import SoftPasskey, SshKey

CLEO = Actor(id="local:cleo", roles=["ciso"])
ADA = Actor(id="local:ada", roles=["admin"])
BOB = Actor(id="local:bob", roles=["admin"])
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["file", "postgres"])
def enrollment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyEnrollment]:
    key = Ed25519PrivateKey.generate()
    if request.param == "file":
        yield KeyEnrollment(FileMedium(tmp_path / "keys-log.jsonl"), key, lambda: NOW)
        return
    db: ApiDatabase = request.getfixturevalue("two")[0]
    yield KeyEnrollment(PgMedium(db.sync_pool.connection, LOG_NAME), key, lambda: NOW)


@pytest.fixture(scope="module")
def ssh(tmp_path_factory: pytest.TempPathFactory) -> SshKey:
    return SshKey.make(tmp_path_factory.mktemp("enroll"), "cleo")


def lines_of(enrollment: KeyEnrollment) -> list[bytes]:
    with enrollment.medium.read() as stored:
        return [line.rstrip(b"\n") for _, line in stored.lines or ()]


class TestEnrollment:
    def test_a_holder_enrolls_another_admin_confirms_and_a_pause_pins_it(
        self, enrollment: KeyEnrollment, ssh: SshKey
    ) -> None:
        key_id, blob = ssh_key(ssh.path.with_name("cleo.pub").read_text())
        enrollment.enroll(CLEO, "ssh", key_id, blob)
        assert enrollment.keys()[key_id].confirmed_by == []
        enrollment.confirm(ADA, key_id)
        ring = enrollment.ring(NOW, rp_id="localhost", origins=["http://localhost:8700"])
        assert [(k.holder, k.enrolled_by, k.confirmed_by) for k in ring.keys] == [("local:cleo", "local:cleo",
                                                                                  ["local:ada"])]
        assert ring.log_lines == 2 and enrollment.problems() == []
        # Read back offline, the log's lines enroll exactly what the pause pinned.
        findings = Findings()
        check_ring(ring, read_log(lines_of(enrollment), "keys", findings), "keys", findings)
        assert findings.problems == []

    def test_nobody_confirms_their_own_key_and_only_an_admin_confirms(
        self, enrollment: KeyEnrollment, ssh: SshKey
    ) -> None:
        key_id, blob = ssh_key(ssh.path.with_name("cleo.pub").read_text())
        enrollment.enroll(ADA, "ssh", key_id, blob)
        with pytest.raises(ActionRefused) as own:
            enrollment.confirm(ADA, key_id)
        assert own.value.code == "separation_of_duties"
        with pytest.raises(ActionRefused) as not_admin:
            enrollment.confirm(CLEO, key_id)
        assert not_admin.value.code == "wrong_role"
        with pytest.raises(ActionRefused) as again:
            enrollment.enroll(CLEO, "ssh", key_id, blob)
        assert again.value.code == "key_exists"
        assert enrollment.keys()[key_id].confirmed_by == [] and len(lines_of(enrollment)) == 1

    def test_a_removed_key_is_not_pinned_by_a_later_pause(self, enrollment: KeyEnrollment) -> None:
        passkey = SoftPasskey()
        enrolled = passkey.enrolled(CLEO.id)
        assert passkey_id(enrolled.public_key) == passkey.key_id
        enrollment.enroll(CLEO, "passkey", passkey.key_id, enrolled.public_key, enrolled.credential_id)
        enrollment.confirm(BOB, passkey.key_id)
        assert len(enrollment.ring(NOW, rp_id="localhost", origins=[]).keys) == 1
        with pytest.raises(ActionRefused):
            enrollment.remove(Actor(id="local:mallory", roles=[]), passkey.key_id)
        enrollment.remove(CLEO, passkey.key_id)
        assert enrollment.ring(NOW, rp_id="localhost", origins=[]).keys == []
        assert [line.count(b'"key.removed"') for line in lines_of(enrollment)] == [0, 0, 1]

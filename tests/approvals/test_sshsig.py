"""SSH signatures as ssh-keygen makes them, verified by pausegate's own SSHSIG reader (no ssh-keygen at
verification): each key type, and what must not verify."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pausegate.approvals import sshsig
from pausegate.cli.ssh_signing import public_key_of, sign

MESSAGE = b"DSSEv1 28 application/vnd.in-toto+json 2 {}"


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa", "rsa"])
def test_a_signature_by_each_key_type_verifies_and_nothing_else_does(tmp_path: Path, kind: str) -> None:
    key = tmp_path / kind
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(key)], check=True, timeout=120)
    blob, signature = public_key_of(key), sign(key, MESSAGE)
    sshsig.verify(signature, MESSAGE, blob)
    with pytest.raises(sshsig.SshSigError, match="does not verify"):
        sshsig.verify(signature, MESSAGE + b" ", blob)
    other = tmp_path / f"{kind}-other"
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(other)], check=True, timeout=120)
    with pytest.raises(sshsig.SshSigError, match="other than the enrolled"):
        sshsig.verify(signature, MESSAGE, public_key_of(other))


def test_a_signature_made_under_another_namespace_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=60)
    done = subprocess.run(["ssh-keygen", "-q", "-Y", "sign", "-n", "git", "-f", str(key)], input=MESSAGE,
                          capture_output=True, check=True, timeout=60)
    with pytest.raises(sshsig.SshSigError, match="namespace"):
        sshsig.verify(sshsig.unarmor(done.stdout.decode()), MESSAGE, public_key_of(key))


@pytest.mark.parametrize("blob", [b"", b"SSHSIG", b"SSHSIG\x00\x00\x00\x01\xff\xff\xff\xff", b"x" * 9000])
def test_hostile_blobs_are_refused_with_a_reason(blob: bytes) -> None:
    with pytest.raises(sshsig.SshSigError):
        sshsig.verify(blob, MESSAGE, b"\x00\x00\x00\x0bssh-ed25519")

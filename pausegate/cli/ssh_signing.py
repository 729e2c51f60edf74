"""Signing an approval statement with an SSH key: ``ssh-keygen -Y sign`` under the approvals' namespace.

The private key never leaves ``ssh-keygen`` (or the agent, or the security key behind an ``sk-`` key):
this module hands it the bytes to sign (the statement's DSSE pre-authentication encoding) and reads
back the signature.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from pausegate.approvals import dsse, sshsig
from pausegate.approvals.statement import ApprovalStatement
from pausegate.models.signatures import DsseEnvelope

SIGN_TIMEOUT_SECONDS = 120.0
"""Long enough to touch a security key; a hung signer is an error, not a wait."""


class SigningFailed(RuntimeError):
    """ssh-keygen could not sign (no such key, a refused touch, a wrong passphrase)."""


def public_key_of(key_path: Path) -> bytes:
    """The wire blob of the public half of ``key_path`` (``<key>.pub`` beside it, or the .pub given)."""
    pub = key_path if key_path.suffix == ".pub" else key_path.with_name(key_path.name + ".pub")
    try:
        return sshsig.key_blob(pub.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, sshsig.SshSigError) as exc:
        raise SigningFailed(f"{pub}: not a readable OpenSSH public key ({exc})") from None


def sign(key_path: Path, message: bytes, *, namespace: str = sshsig.NAMESPACE) -> bytes:
    """The SSHSIG blob of ``message`` made by ``key_path`` under ``namespace`` (the approvals', unless
    the key is being enrolled)."""
    if key_path.suffix == ".pub":  # ssh-keygen finds the private half from the public one's name
        key_path = key_path.with_suffix("")
    try:
        done = subprocess.run(
            ["ssh-keygen", "-q", "-Y", "sign", "-n", namespace, "-f", str(key_path)],
            input=message, capture_output=True, timeout=SIGN_TIMEOUT_SECONDS, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SigningFailed(f"ssh-keygen could not run: {exc}") from None
    if done.returncode != 0:
        raise SigningFailed(f"ssh-keygen refused to sign: {done.stderr.decode(errors='replace')[:300].strip()}")
    try:
        return sshsig.unarmor(done.stdout.decode("ascii"))
    except (UnicodeDecodeError, sshsig.SshSigError) as exc:
        raise SigningFailed(f"ssh-keygen wrote no signature: {exc}") from None


def sign_statement(key_path: Path, statement: ApprovalStatement) -> DsseEnvelope:
    """``statement`` in a DSSE envelope signed by ``key_path``."""
    body = statement.body()
    blob = sign(key_path, dsse.pae(dsse.IN_TOTO_PAYLOAD, body))
    return dsse.envelope(body, sshsig.key_id(public_key_of(key_path)), blob)

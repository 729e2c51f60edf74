"""Proof of possession at enrollment: an SSH key is enrolled only by someone who signs the server's
challenge with it, under the enrollment's own namespace; every other proof is refused, saying why."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pausegate.approvals import possession, sshsig
from pausegate.approvals.possession import ENROLL_NAMESPACE, PossessionError
from pausegate.cli.ssh_signing import sign
from tests.api.support import ApiWorld, api_world
from tests.support.harness import Harness
from tests.support.signing import SshKey

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
CLEO = "local:cleo"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SshKey]:
    directory = tmp_path_factory.mktemp("possession")
    return {name: SshKey.make(directory, name) for name in ("cleo", "other")}


@pytest.fixture(scope="module")
def deployment() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def proof(key: SshKey, challenge: str, namespace: str = ENROLL_NAMESPACE) -> str:
    return base64.b64encode(sign(key.path, challenge.encode(), namespace=namespace)).decode()


async def enroll_ssh(client: httpx.AsyncClient, key: SshKey) -> httpx.Response:
    """Enroll ``key`` as the CLI does: ask for a challenge, sign it with the key, send both."""
    public = key.path.with_name(key.path.name + ".pub").read_text()
    asked = await client.post("/v1/keys/ssh/challenge", json={"public_key": public})
    assert asked.status_code == 200, asked.text
    challenge = asked.json()["challenge"]
    return await client.post("/v1/keys/ssh", json={"public_key": public, "challenge": challenge,
                                                   "signature": proof(key, challenge)})


class TestProof:
    def check(self, deployment: Ed25519PrivateKey, challenge: str, signature: str, blob: bytes,
              *, actor: str = CLEO, at: datetime = NOW) -> None:
        possession.check(deployment.public_key(), challenge, signature, actor_id=actor, key_blob=blob, now=at)

    def test_the_holder_signing_the_challenge_with_the_key_proves_it(
        self, deployment: Ed25519PrivateKey, keys: dict[str, SshKey]
    ) -> None:
        cleo = keys["cleo"]
        challenge, expires = possession.issue(deployment, CLEO, cleo.key_id, NOW)
        assert expires == NOW + timedelta(seconds=possession.CHALLENGE_SECONDS)
        self.check(deployment, challenge, proof(cleo, challenge), cleo.blob)

    def test_an_armored_signature_is_taken_too(self, deployment: Ed25519PrivateKey, keys: dict[str, SshKey]) -> None:
        cleo = keys["cleo"]
        challenge, _ = possession.issue(deployment, CLEO, cleo.key_id, NOW)
        blob = sign(cleo.path, challenge.encode(), namespace=ENROLL_NAMESPACE)
        armored = "-----BEGIN SSH SIGNATURE-----\n" + base64.b64encode(blob).decode() + "\n-----END SSH SIGNATURE-----"
        self.check(deployment, challenge, armored, cleo.blob)

    @pytest.mark.parametrize("case, why", [
        ("another key signed", "signed by a key other than the enrolled one"),
        ("the approvals' namespace", "not 'pausegate-key-enrollment'"),
        ("another person's challenge", "issued to someone else"),
        ("a challenge for another key", "issued for another key"),
        ("an expired challenge", "expired"),
        ("a challenge the deployment did not issue", "not issued by this deployment"),
        ("no challenge at all", "not one this deployment issues"),
        ("a signature that is not one", "did not sign the challenge"),
    ])
    def test_a_proof_that_is_not_the_holders_is_refused(
        self, deployment: Ed25519PrivateKey, keys: dict[str, SshKey], case: str, why: str
    ) -> None:
        cleo, other = keys["cleo"], keys["other"]
        challenge, _ = possession.issue(deployment, CLEO, cleo.key_id, NOW)
        signature, actor, at = proof(cleo, challenge), CLEO, NOW
        if case == "another key signed":
            signature = proof(other, challenge)
        elif case == "the approvals' namespace":
            signature = proof(cleo, challenge, sshsig.NAMESPACE)
        elif case == "another person's challenge":
            actor = "local:pat"
        elif case == "a challenge for another key":
            challenge, _ = possession.issue(deployment, CLEO, other.key_id, NOW)
            signature = proof(cleo, challenge)
        elif case == "an expired challenge":
            at = NOW + timedelta(seconds=possession.CHALLENGE_SECONDS + 1)
        elif case == "a challenge the deployment did not issue":
            challenge, _ = possession.issue(Ed25519PrivateKey.generate(), CLEO, cleo.key_id, NOW)
            signature = proof(cleo, challenge)
        elif case == "no challenge at all":
            challenge = "sign me"
        elif case == "a signature that is not one":
            signature = base64.b64encode(b"SSHSIG" + b"\x00" * 40).decode()
        with pytest.raises(PossessionError, match=why):
            self.check(deployment, challenge, signature, cleo.blob, actor=actor, at=at)

    def test_an_approval_signature_is_never_an_enrollment_proof_nor_the_reverse(
        self, deployment: Ed25519PrivateKey, keys: dict[str, SshKey]
    ) -> None:
        cleo = keys["cleo"]
        challenge, _ = possession.issue(deployment, CLEO, cleo.key_id, NOW)
        enrolling = sign(cleo.path, challenge.encode(), namespace=ENROLL_NAMESPACE)
        with pytest.raises(sshsig.SshSigError, match="namespace"):
            sshsig.verify(enrolling, challenge.encode(), cleo.blob)


# Through the API -------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def api(harness: Harness, tmp_path: Path) -> AsyncIterator[ApiWorld]:
    async with api_world(harness, tmp_path / "api") as world:
        yield world


async def test_the_api_enrolls_a_key_only_with_its_holders_proof(api: ApiWorld, keys: dict[str, SshKey]) -> None:
    cleo, other = keys["cleo"], keys["other"]
    client = api.client("cleo")
    public = cleo.path.with_name("cleo.pub").read_text()
    bare = await client.post("/v1/keys/ssh", json={"public_key": public})
    assert bare.status_code == 422 and bare.json()["error"] == "proof_of_possession", bare.text
    assert "ssh-keygen -Y sign -n pausegate-key-enrollment" in bare.json()["detail"]

    challenge = (await client.post("/v1/keys/ssh/challenge", json={"public_key": public})).json()["challenge"]
    forged = await client.post("/v1/keys/ssh", json={"public_key": public, "challenge": challenge,
                                                     "signature": proof(other, challenge)})
    assert forged.status_code == 422 and "did not sign the challenge" in forged.json()["detail"], forged.text
    # Another person cannot use cleo's challenge, even with her signature.
    stolen = await api.client("pat").post("/v1/keys/ssh", json={"public_key": public, "challenge": challenge,
                                                                 "signature": proof(cleo, challenge)})
    assert stolen.status_code == 422 and "issued to someone else" in stolen.json()["detail"], stolen.text
    assert (await client.get("/v1/keys")).json()["keys"] == []

    enrolled = await enroll_ssh(client, cleo)
    assert enrolled.status_code == 201, enrolled.text
    assert enrolled.json()["key_id"] == cleo.key_id

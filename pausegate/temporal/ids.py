"""Identifiers that stand for names: the pause's workflow id, the API's update ids.

Workflow ids, update ids, activity ids, search attributes and memos are metadata, not payloads: the
history codec never sees them, the Temporal Web UI lists them, and anyone with namespace access reads
them. So they carry keyed digests of names (HMAC-SHA256 under ``encryption.identifier_key``, 128 bits
in hex), never the names. A digest is stable for a key, so pulling the switch twice derives the same
id and finds the open pause; whoever lacks the key cannot test a guessed program or person against it.

Only client code derives ids (``pause_id``, ``update_id``): the workflow never needs the key, it reads
its own id from ``workflow.info()``. Without history encryption configured there is no key and the
digests are unkeyed SHA-256: names are off the screen but a guess can be checked, which the docs say.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from temporalio.client import Client

from pausegate.temporal.codec import codec_of

DIGEST_HEX_CHARS = 32  # 128 bits: collisions between programs are out of reach, ids stay short
PAUSE_PREFIX = "pause/"


def name_digest(key: bytes | None, purpose: str, *names: str) -> str:
    """A digest of ``names`` for one ``purpose`` (a different purpose gives an unrelated digest)."""
    message = json.dumps([purpose, *names], ensure_ascii=False).encode()  # unambiguous framing of the parts
    if key is None:
        return hashlib.sha256(b"pausegate/unkeyed\0" + message).hexdigest()[:DIGEST_HEX_CHARS]
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:DIGEST_HEX_CHARS]


def pause_workflow_id(program: str, key: bytes | None) -> str:
    """The one workflow id a program's open pause has."""
    return PAUSE_PREFIX + name_digest(key, "pause-workflow", program)


def identifier_key(client: Client) -> bytes | None:
    """The identifier key the client was built with (``pausegate.temporal.client.connect``), if any."""
    codec = codec_of(client.data_converter)
    return codec.keyring.identifier_key if codec is not None else None


def pause_id(client: Client, program: str) -> str:
    """The workflow id of ``program``'s pause, for this client's deployment."""
    return pause_workflow_id(program, identifier_key(client))


def update_id(key: bytes | None, actor: str, action: str, idempotency_key: str) -> str:
    """The update id of one request (actor, action, Idempotency-Key): the same for each retry of it."""
    return "api-" + name_digest(key, "update", actor, action, idempotency_key)

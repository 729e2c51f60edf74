"""History encryption in tests: one fixed test keyring, so every client and worker of the session
(and the stored histories under tests/histories/) share it, and helpers to read a history as the
holder of that key (and as someone without it) would.

The keys are derived from fixed labels: they protect nothing, they make recorded histories replayable.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from pydantic import SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowHistory

from pausegate.config import EncryptionSettings
from pausegate.temporal.codec import ENCODING, EncryptionCodec, Keyring, data_converter


def fixed_key(label: str) -> bytes:
    return hashlib.sha256(f"pausegate test key: {label}".encode()).digest()


def key_text(key: bytes) -> SecretStr:
    return SecretStr(base64.b64encode(key).decode())


TEST_KEY_ID = "test-1"
TEST_KEYRING = Keyring(keys={TEST_KEY_ID: fixed_key(TEST_KEY_ID)}, current=TEST_KEY_ID,
                       identifier_key=fixed_key("identifiers"))
TEST_ENCRYPTION: EncryptionSettings = TEST_KEYRING.to_settings()
TEST_CONVERTER = data_converter(TEST_KEYRING)
TEST_NAMESPACE = "default"
"""The dev server's namespace, where every test pause runs. Payloads are bound to it (``pausegate.temporal.codec``),
so a replay names it: the SDK's Replayer otherwise decodes in a namespace of its own."""
TEST_CODEC = EncryptionCodec(TEST_KEYRING)


def _payload_nodes(node: Any) -> Any:
    """Every payload object (``{"metadata": …, "data": …}``) in a history's JSON form."""
    if isinstance(node, dict):
        if isinstance(node.get("metadata"), dict) and "encoding" in node["metadata"]:
            yield node
        for value in node.values():
            yield from _payload_nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _payload_nodes(value)


def encodings(history: WorkflowHistory) -> list[bytes]:
    """The ``encoding`` of every payload in ``history`` (as stored, nothing decoded)."""
    return [base64.b64decode(p["metadata"]["encoding"]) for p in _payload_nodes(json.loads(history.to_json()))]


def decrypted_history_json(history: WorkflowHistory, codec: EncryptionCodec = TEST_CODEC) -> str:
    """``history``'s JSON with every encrypted payload replaced by what it seals: what a key holder reads."""
    tree = json.loads(history.to_json())
    for node in _payload_nodes(tree):
        if base64.b64decode(node["metadata"]["encoding"]) != ENCODING:
            continue
        sealed = Payload(metadata={k: base64.b64decode(v) for k, v in node["metadata"].items()},
                         data=base64.b64decode(node.get("data", "")))
        opened = codec.open(sealed)
        node.clear()
        node["metadata"] = {k: base64.b64encode(v).decode() for k, v in opened.metadata.items()}
        if opened.data:
            node["data"] = base64.b64encode(opened.data).decode()
    return json.dumps(tree)

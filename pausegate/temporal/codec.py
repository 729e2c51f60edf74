"""Workflow history encryption: a Temporal payload codec sealing every payload with AES-256-GCM.

Workflow history is readable by everyone with namespace access (and shown by the Temporal Web UI to
every operator of the cluster). Program names, actors, reasons, plan diffs and evidence URIs are the
story of an incident, so every payload a client or worker writes is sealed here before it leaves the
process: the payload (metadata and data) becomes the plaintext of AES-256-GCM under the configured
current key, and the new payload carries only ``encoding: binary/encrypted`` and the key's id.

Decoding is strict: a payload that is not sealed, names a key this process does not hold, or does not
authenticate under its key is an ``HistoryKeyError`` naming the key id, never a silent fallback to the
plaintext. Besides secrecy this gives integrity: someone with namespace access but no key cannot send
the pause an update or signal the worker would accept (the actor in it would otherwise be theirs to
choose). The one lenient path is the codec endpoint's decode for display (``allow_plaintext``), where a
plaintext payload is shown as it already is in history.

Binding: a ciphertext is also bound to where it belongs. Inside the sealed payload (so only a key holder
writes it, and nobody without the key reads it) are the namespace and the workflow id of the serialization
context the SDK encoded it in; decoding in another workflow's context refuses it, so a payload copied from
one pause's history does not open in another's: it opens as a payload of the ``binary/misaddressed``
encoding, which no converter reads, so the workflow rejects an update that carries one and drops a signal
(a raised error would fail the workflow task instead, and hold the pause until the update is gone), and
the worker logs it. A payload that is not sealed at all opens, in a workflow's context, as one of the
``binary/unsealed`` encoding in the same way (a keyless client's signal or update must not hold the
workflow); elsewhere it is refused. The SDK's context names no run and no update: the messages
people send a pause carry the rest of their address themselves (``pausegate.models.seals``), which the
workflow checks. Payloads sealed before binding existed (``encryption-format`` absent) still open, bound to
nothing, so stored histories replay; the workflow refuses an update or start in that format.

Rotation: add a key, make it current. Payloads keep naming the key they were sealed with, so every key
still named by an open pause's history must stay configured.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    ActivitySerializationContext,
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
    SerializationContext,
    WithSerializationContext,
    WorkflowSerializationContext,
)

from pausegate.config import KEY_ID_PATTERN, EncryptionSettings
from pausegate.errors import ConfigError, HistoryKeyError
from pausegate.logging import get_logger

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
KEY_BYTES = 32
NONCE_BYTES = 12
FORMAT_METADATA = "encryption-format"
BOUND_FORMAT = b"bound-1"
"""The format of a payload that carries its binding; a payload without ``encryption-format`` is unbound."""
# Inside the ciphertext only: where the payload was sealed for.
BOUND_NAMESPACE = "pausegate-bound-namespace"
BOUND_WORKFLOW_ID = "pausegate-bound-workflow-id"
MISADDRESSED = b"binary/misaddressed"
"""The encoding a payload bound to another workflow opens as: no payload converter reads it."""
UNSEALED = b"binary/unsealed"
"""The encoding a payload nobody holding a key sealed opens as in a workflow's context: none reads it either."""
# Bound to every ciphertext with its key id, so a sealed payload cannot be passed off as sealed under
# another key id, nor as something other than a pausegate history payload. The format is in the prefix:
# a bound payload relabelled as unbound (its format metadata removed) does not authenticate.
_AAD_PREFIX = b"pausegate/history-payload/v1\0"
_BOUND_AAD_PREFIX = b"pausegate/history-payload/v2\0"
_KEY_ID = re.compile(KEY_ID_PATTERN)

LOGGER = "pausegate.temporal.codec"


def new_key_text() -> str:
    """A fresh random key, base64-encoded as configuration holds it."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


def parse_key(text: str, where: str) -> bytes:
    """The 32 bytes a base64 key text stands for, or a ``ConfigError`` saying where it was found."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where}: not base64") from None
    if len(key) != KEY_BYTES:
        raise ConfigError(f"{where}: a key is {KEY_BYTES} bytes, this one is {len(key)}")
    return key


def _read_key_file(path: Path, where: str) -> bytes:
    try:
        # a key file holds one line of base64: bounded so a wrong path (a disk image) fails fast
        with path.open("rb") as f:
            text = f.read(256).decode("ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot read key file {path}: {exc}") from None
    return parse_key(text, f"{where} ({path})")


@dataclass(frozen=True)
class Keyring:
    """The history keys by id, the one new payloads use, and the key for id digests."""

    keys: Mapping[str, bytes]
    current: str
    identifier_key: bytes
    _ciphers: dict[str, AESGCM] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for key_id, key in self.keys.items():
            if not _KEY_ID.fullmatch(key_id):
                raise ConfigError(f"encryption.keys: key id {key_id[:80]!r} must match {KEY_ID_PATTERN}")
            if len(key) != KEY_BYTES:
                raise ConfigError(f"encryption.keys.{key_id}: a key is {KEY_BYTES} bytes, this one is {len(key)}")
            self._ciphers[key_id] = AESGCM(key)
        if self.current not in self.keys:
            known = ", ".join(sorted(self.keys)) or "none"
            raise ConfigError(
                f"encryption.current_key: key id {self.current!r} is not configured (configured: {known})")
        if len(self.identifier_key) != KEY_BYTES:
            raise ConfigError(f"encryption.identifier_key: a key is {KEY_BYTES} bytes")

    def __repr__(self) -> str:  # never the keys
        return f"Keyring(current={self.current!r}, keys={sorted(self.keys)!r})"

    @classmethod
    def from_settings(cls, settings: EncryptionSettings) -> Keyring:
        """The keyring configuration describes (keys read from their files now)."""
        keys: dict[str, bytes] = {}
        for key_id, secret in settings.keys.items():
            keys[key_id] = parse_key(secret.get_secret_value(), f"encryption.keys.{key_id}")
        for key_id, path in settings.key_files.items():
            if key_id in keys:
                raise ConfigError(f"encryption: key id {key_id!r} is given both inline and as a file")
            keys[key_id] = _read_key_file(path, f"encryption.key_files.{key_id}")
        if settings.identifier_key is not None and settings.identifier_key_file is not None:
            raise ConfigError("encryption: give identifier_key or identifier_key_file, not both")
        if settings.identifier_key is not None:
            identifier = parse_key(settings.identifier_key.get_secret_value(), "encryption.identifier_key")
        elif settings.identifier_key_file is not None:
            identifier = _read_key_file(settings.identifier_key_file, "encryption.identifier_key_file")
        else:
            raise ConfigError("encryption: identifier_key or identifier_key_file is required (it keys the digests "
                              "that stand for program names in workflow ids)")
        return cls(keys=keys, current=settings.current_key, identifier_key=identifier)

    def to_settings(self, *, ui_origin: str | None = None) -> EncryptionSettings:
        """This keyring as a configuration section with the keys inline (for a client configuration
        written beside a server someone else started with this keyring)."""
        def text(key: bytes) -> SecretStr:
            return SecretStr(base64.b64encode(key).decode())

        return EncryptionSettings(current_key=self.current, keys={k: text(v) for k, v in self.keys.items()},
                                  identifier_key=text(self.identifier_key), ui_origin=ui_origin)

    def cipher(self, key_id: str) -> AESGCM:
        """The cipher of ``key_id``, or an error naming the key id."""
        try:
            return self._ciphers[key_id]
        except KeyError:
            known = ", ".join(sorted(self._ciphers))
            raise HistoryKeyError(
                f"a history payload is encrypted with key id {key_id[:80]!r}, which is not configured "
                f"(configured: {known}); add it to encryption.keys or encryption.key_files"
            ) from None


@dataclass(frozen=True)
class Binding:
    """Where a payload belongs: the namespace and workflow id of the SDK's serialization context."""

    namespace: str
    workflow_id: str


def binding_of(context: SerializationContext) -> Binding | None:
    """The binding a serialization context gives (an activity's is its workflow's), if it names a workflow."""
    if isinstance(context, WorkflowSerializationContext):
        return Binding(context.namespace, context.workflow_id)
    if isinstance(context, ActivitySerializationContext) and context.workflow_id:
        return Binding(context.namespace, context.workflow_id)
    return None


class EncryptionCodec(PayloadCodec, WithSerializationContext):
    """Seals payloads under the keyring's current key, bound to the context's workflow; opens each with the
    key it names, and one bound to another workflow as a payload nothing reads."""

    def __init__(self, keyring: Keyring, binding: Binding | None = None) -> None:
        self.keyring = keyring
        self.binding = binding

    def with_context(self, context: SerializationContext) -> Self:
        binding = binding_of(context)
        if binding == self.binding:
            return self
        return type(self)(self.keyring, binding)

    def seal(self, payload: Payload) -> Payload:
        """``payload`` sealed under the current key, bound to this codec's workflow (unbound without one:
        the codec endpoint's encode, which has no workflow)."""
        key_id = self.keyring.current
        inner = Payload()
        inner.CopyFrom(payload)
        if self.binding is not None:
            inner.metadata[BOUND_NAMESPACE] = self.binding.namespace.encode()
            inner.metadata[BOUND_WORKFLOW_ID] = self.binding.workflow_id.encode()
        nonce = os.urandom(NONCE_BYTES)
        sealed = self.keyring.cipher(key_id).encrypt(nonce, inner.SerializeToString(), _aad(key_id, bound=True))
        return Payload(metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id.encode(), FORMAT_METADATA: BOUND_FORMAT},
                       data=nonce + sealed)

    def open(self, payload: Payload, *, allow_plaintext: bool = False) -> Payload:
        """The payload ``seal`` was given. ``allow_plaintext`` returns an unsealed payload as it is
        (display only: a worker must never act on a payload nobody holding the key wrote). A payload bound
        to another workflow than this codec's opens as an empty ``MISADDRESSED`` payload; without a binding
        of its own (the codec endpoint) the codec opens any."""
        if payload.metadata.get("encoding") != ENCODING:
            if allow_plaintext:
                return payload
            encoding = payload.metadata.get("encoding", b"").decode("utf-8", "replace")[:80]
            if self.binding is not None:
                # In a workflow's context it is a stranger's message (a signal or update sent straight to
                # Temporal without the key): raising would fail the workflow task for as long as it is
                # delivered, holding the workflow (a drill's restore, a pause's containment). Opened as a
                # payload nothing reads, the update is rejected and the signal dropped; never read.
                get_logger(LOGGER).warning("history_payload_unsealed", encoding=encoding,
                                           opened_in=self.binding.workflow_id[:200],
                                           namespace=self.binding.namespace[:200])
                return Payload(metadata={"encoding": UNSEALED})
            raise HistoryKeyError(f"a history payload is not encrypted (encoding {encoding!r}); this deployment "
                                  "encrypts history and accepts no plaintext payload")
        raw_id = payload.metadata.get(KEY_ID_METADATA)
        if raw_id is None:
            raise HistoryKeyError(f"an encrypted history payload names no key id ({KEY_ID_METADATA} metadata)")
        key_id = raw_id.decode("utf-8", "replace")
        cipher = self.keyring.cipher(key_id)
        form = payload.metadata.get(FORMAT_METADATA)
        if form not in (None, BOUND_FORMAT):
            raise HistoryKeyError(f"an encrypted history payload has an unknown format {form[:40]!r}")
        if len(payload.data) <= NONCE_BYTES:
            raise HistoryKeyError(f"an encrypted history payload under key id {key_id!r} is truncated")
        try:
            plain = cipher.decrypt(payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:],
                                   _aad(key_id, bound=form is not None))
        except InvalidTag:
            raise HistoryKeyError(
                f"a history payload does not authenticate under key id {key_id!r}: altered, or sealed with "
                "another key of that id"
            ) from None
        opened = Payload()
        opened.ParseFromString(plain)
        if form is None:
            return opened
        namespace = opened.metadata.pop(BOUND_NAMESPACE, None)
        workflow_id = opened.metadata.pop(BOUND_WORKFLOW_ID, None)
        if namespace is None or workflow_id is None or self.binding is None:
            return opened
        bound = Binding(namespace.decode("utf-8", "replace"), workflow_id.decode("utf-8", "replace"))
        if bound == self.binding:
            return opened
        # ids are keyed digests (pausegate.temporal.ids): they name no program
        # the logger is made here, under the logging configuration in force now, not the one at import
        get_logger(LOGGER).warning(
            "history_payload_misaddressed", sealed_for=bound.workflow_id[:200], sealed_namespace=bound.namespace[:200],
            opened_in=self.binding.workflow_id[:200], namespace=self.binding.namespace[:200],
        )
        return Payload(metadata={"encoding": MISADDRESSED})

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.seal(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.open(p) for p in payloads]


def _aad(key_id: str, *, bound: bool) -> bytes:
    return (_BOUND_AAD_PREFIX if bound else _AAD_PREFIX) + key_id.encode()


# Converters kept per workflow binding; past this many the cache starts over (a worker lives for months).
BOUND_CONVERTERS_KEPT = 4096


@dataclasses.dataclass(frozen=True)
class BoundDataConverter(DataConverter):
    """The SDK's data converter, made once per workflow binding instead of once per payload.

    The SDK asks for a converter in each payload's context (every activity a workflow schedules has a
    context of its own) and rebuilds the whole converter each time, payload converter included; only the
    codec depends on the context here, and only on its binding (namespace and workflow id), so one
    converter per binding serves every context that names it. With fifty pauses starting at once that
    rebuilding was a fifth of each pause's first workflow task."""

    bound: dict[Binding | None, DataConverter] = dataclasses.field(default_factory=dict, compare=False,
                                                                    repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        parts = (self.payload_converter, self.failure_converter, self.external_storage)
        probe = WorkflowSerializationContext(namespace="", workflow_id="")
        # Whether anything but the codec would change with the context: then nothing is reused.
        others_take_context = any(isinstance(p, WithSerializationContext) and p.with_context(probe) is not p
                                  for p in parts)
        object.__setattr__(self, "_reusable", isinstance(self.payload_codec, EncryptionCodec)
                           and not others_take_context)

    def with_context(self, context: SerializationContext) -> Self:
        codec = self.payload_codec
        if not getattr(self, "_reusable", False) or not isinstance(codec, EncryptionCodec):
            return super().with_context(context)
        binding = binding_of(context)
        if binding == codec.binding:
            return self
        made = self.bound.get(binding)
        if made is None:
            if len(self.bound) >= BOUND_CONVERTERS_KEPT:
                self.bound.clear()
            made = self.bound[binding] = super().with_context(context)
        return made  # type: ignore[return-value]


def data_converter(keyring: Keyring | None) -> DataConverter:
    """The data converter every client and worker uses: pydantic JSON, then the codec when history is
    encrypted. Failure messages and stack traces then travel inside an encoded payload too (they name
    programs and connections), not as plaintext fields of history."""
    if keyring is None:
        return pydantic_data_converter
    settings = {f.name: getattr(pydantic_data_converter, f.name) for f in dataclasses.fields(DataConverter) if f.init}
    return BoundDataConverter(**{**settings, "payload_codec": EncryptionCodec(keyring),
                                 "failure_converter_class": DefaultFailureConverterWithEncodedAttributes})


def data_converter_for(settings: EncryptionSettings | None) -> DataConverter:
    """``data_converter`` for the configured keys (none: plaintext history)."""
    return data_converter(Keyring.from_settings(settings) if settings is not None else None)


def codec_of(converter: DataConverter) -> EncryptionCodec | None:
    """The encryption codec a data converter applies, if any."""
    codec = converter.payload_codec
    return codec if isinstance(codec, EncryptionCodec) else None

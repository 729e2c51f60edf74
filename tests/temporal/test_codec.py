"""The history codec and id digests on their own: sealing, key ids, rotation, strictness, configuration."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr
from structlog.testing import capture_logs
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.converter import ActivitySerializationContext, WorkflowSerializationContext

from pausegate.config import EncryptionSettings, Settings, dump_settings, load_settings
from pausegate.embedded.history_keys import FIRST_KEY_ID, embedded_encryption
from pausegate.errors import ConfigError, HistoryKeyError
from pausegate.models.people import Actor
from pausegate.temporal import ids
from pausegate.temporal.codec import (
    BOUND_FORMAT,
    ENCODING,
    FORMAT_METADATA,
    KEY_ID_METADATA,
    MISADDRESSED,
    EncryptionCodec,
    Keyring,
    data_converter,
)
from tests.support.encryption import fixed_key, key_text

OLD = fixed_key("old")
NEW = fixed_key("new")
IDS = fixed_key("ids")


def keyring(current: str = "old", **keys: bytes) -> Keyring:
    return Keyring(keys=keys or {"old": OLD}, current=current, identifier_key=IDS)


def plain(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=text.encode())


class TestSealing:
    async def test_a_sealed_payload_holds_only_ciphertext_and_its_key_id_and_opens_to_the_original(self) -> None:
        codec = EncryptionCodec(keyring())
        original = plain('{"program": "employee-telemetry", "actor": "local:carol"}')
        [sealed] = await codec.encode([original])
        assert sealed.metadata["encoding"] == ENCODING and sealed.metadata[KEY_ID_METADATA] == b"old"
        assert set(sealed.metadata) == {"encoding", KEY_ID_METADATA, FORMAT_METADATA}
        assert b"employee" not in sealed.data and b"carol" not in sealed.data and b"json/plain" not in sealed.data
        assert await codec.decode([sealed]) == [original]

    async def test_sealing_twice_gives_different_ciphertexts(self) -> None:
        codec = EncryptionCodec(keyring())
        first, second = await codec.encode([plain("same"), plain("same")])
        assert first.data != second.data

    async def test_a_changed_byte_or_a_relabelled_key_id_does_not_authenticate(self) -> None:
        both = EncryptionCodec(keyring("old", old=OLD, new=NEW))
        [sealed] = await both.encode([plain("approve")])
        flipped = Payload(metadata=sealed.metadata, data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1]))
        with pytest.raises(HistoryKeyError, match="does not authenticate under key id 'old'"):
            await both.decode([flipped])
        relabelled = Payload(metadata={**sealed.metadata, KEY_ID_METADATA: b"new"}, data=sealed.data)
        with pytest.raises(HistoryKeyError, match="key id 'new'"):
            await both.decode([relabelled])

    async def test_an_unknown_key_id_is_an_error_naming_it(self) -> None:
        [sealed] = await EncryptionCodec(keyring("new", new=NEW)).encode([plain("x")])
        with pytest.raises(HistoryKeyError, match=r"key id 'new', which is not configured \(configured: old\)"):
            await EncryptionCodec(keyring()).decode([sealed])

    async def test_a_plaintext_payload_is_refused_by_workers_and_shown_as_is_only_for_display(self) -> None:
        codec = EncryptionCodec(keyring())
        forged = plain('{"actor": {"id": "local:cleo"}}')
        with pytest.raises(HistoryKeyError, match="not encrypted"):
            await codec.decode([forged])
        assert codec.open(forged, allow_plaintext=True) == forged
        with pytest.raises(HistoryKeyError, match="names no key id"):
            await codec.decode([Payload(metadata={"encoding": ENCODING}, data=b"x" * 40)])

    async def test_rotation_new_payloads_use_the_current_key_old_ones_open_with_theirs(self) -> None:
        [old_sealed] = await EncryptionCodec(keyring()).encode([plain("before")])
        rotated = EncryptionCodec(keyring("new", old=OLD, new=NEW))
        [new_sealed] = await rotated.encode([plain("after")])
        assert new_sealed.metadata[KEY_ID_METADATA] == b"new"
        assert [p.data for p in await rotated.decode([old_sealed, new_sealed])] == [b"before", b"after"]

    async def test_failure_messages_travel_encrypted_too(self) -> None:
        converter = data_converter(keyring())
        failure = Failure()
        converter.failure_converter.to_failure(
            RuntimeError("connection telemetry-db refused"), converter.payload_converter, failure)
        assert converter.payload_codec is not None
        await converter.payload_codec.encode_failure(failure)
        assert "telemetry-db" not in failure.message and "telemetry-db" not in failure.stack_trace
        assert failure.encoded_attributes.metadata["encoding"] == ENCODING


def in_workflow(workflow_id: str, namespace: str = "default") -> WorkflowSerializationContext:
    return WorkflowSerializationContext(namespace=namespace, workflow_id=workflow_id)


def sealed_before_binding(key_id: str, key: bytes, payload: Payload) -> Payload:
    """A payload as this codec sealed it before payloads were bound (the stored histories hold these)."""
    nonce = b"\x01" * 12
    data = AESGCM(key).encrypt(nonce, payload.SerializeToString(), b"pausegate/history-payload/v1\0" + key_id.encode())
    return Payload(metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id.encode()}, data=nonce + data)


class TestBinding:
    async def test_a_payload_sealed_in_one_workflows_context_opens_only_in_that_workflows(self) -> None:
        codec = EncryptionCodec(keyring())
        original = plain('{"actor": "local:ann", "item_id": "access-review"}')
        [sealed] = await codec.with_context(in_workflow("pause/aaa")).encode([original])
        assert sealed.metadata[FORMAT_METADATA] == BOUND_FORMAT
        assert b"pause/aaa" not in sealed.data  # the address is inside the ciphertext
        assert await codec.with_context(in_workflow("pause/aaa")).decode([sealed]) == [original]
        misaddressed = Payload(metadata={"encoding": MISADDRESSED})
        with capture_logs() as logs:
            assert await codec.with_context(in_workflow("pause/bbb")).decode([sealed]) == [misaddressed]
            assert await codec.with_context(in_workflow("pause/aaa", "other")).decode([sealed]) == [misaddressed]
        assert [(e["event"], e["sealed_for"], e["opened_in"], e["namespace"]) for e in logs] == [
            ("history_payload_misaddressed", "pause/aaa", "pause/bbb", "default"),
            ("history_payload_misaddressed", "pause/aaa", "pause/aaa", "other")]

    async def test_no_converter_reads_a_misaddressed_payload(self) -> None:
        [sealed] = await EncryptionCodec(keyring()).with_context(in_workflow("pause/aaa")).encode([plain('"x"')])
        elsewhere = data_converter(keyring()).with_context(in_workflow("pause/bbb"))
        with pytest.raises(KeyError, match="binary/misaddressed"):
            await elsewhere.decode([sealed], [str])

    async def test_an_activity_of_the_workflow_shares_its_binding(self) -> None:
        codec = EncryptionCodec(keyring())
        activity = ActivitySerializationContext(namespace="default", activity_id="7", activity_type="halt",
                                                activity_task_queue="q", workflow_id="pause/aaa",
                                                workflow_type="PauseWorkflow", is_local=False)
        [sealed] = await codec.with_context(activity).encode([plain("halted")])
        assert [p.data for p in await codec.with_context(in_workflow("pause/aaa")).decode([sealed])] == [b"halted"]

    async def test_one_converter_serves_every_context_of_a_workflow_and_seals_for_it(self) -> None:
        converter = data_converter(keyring())

        def activity(activity_id: str, workflow_id: str) -> ActivitySerializationContext:
            return ActivitySerializationContext(namespace="default", activity_id=activity_id, activity_type="halt",
                                                activity_task_queue="q", workflow_id=workflow_id,
                                                workflow_type="PauseWorkflow", is_local=False)

        first = converter.with_context(activity("1", "pause/aaa"))
        assert converter.with_context(activity("2", "pause/aaa")) is first  # made once for the workflow
        assert converter.with_context(in_workflow("pause/aaa")) is first
        other = converter.with_context(activity("1", "pause/bbb"))
        assert other is not first
        [sealed] = await first.encode(["halted"])
        assert await converter.with_context(in_workflow("pause/aaa")).decode([sealed], [str]) == ["halted"]
        with pytest.raises(KeyError, match="binary/misaddressed"):
            await other.decode([sealed], [str])

    async def test_without_a_context_a_bound_payload_opens_for_display(self) -> None:
        codec = EncryptionCodec(keyring())
        [sealed] = await codec.with_context(in_workflow("pause/aaa")).encode([plain("x")])
        assert codec.open(sealed, allow_plaintext=True) == plain("x")  # the codec endpoint has no workflow

    async def test_a_bound_payload_passed_off_as_unbound_does_not_authenticate(self) -> None:
        codec = EncryptionCodec(keyring())
        [sealed] = await codec.with_context(in_workflow("pause/aaa")).encode([plain("x")])
        stripped = Payload(metadata={k: v for k, v in sealed.metadata.items() if k != FORMAT_METADATA},
                           data=sealed.data)
        with pytest.raises(HistoryKeyError, match="does not authenticate"):
            await codec.with_context(in_workflow("pause/bbb")).decode([stripped])
        unknown = Payload(metadata={**sealed.metadata, FORMAT_METADATA: b"bound-9"}, data=sealed.data)
        with pytest.raises(HistoryKeyError, match="unknown format"):
            await codec.decode([unknown])

    async def test_a_payload_sealed_before_binding_still_opens_in_any_context(self) -> None:
        old = sealed_before_binding("old", OLD, plain("approve"))
        opened = await EncryptionCodec(keyring()).with_context(in_workflow("pause/any")).decode([old])
        assert opened == [plain("approve")]


class TestKeyring:
    def test_keys_come_from_configuration_inline_or_from_files(self, tmp_path: Path) -> None:
        (tmp_path / "new.key").write_text(base64.b64encode(NEW).decode() + "\n")
        settings = EncryptionSettings(current_key="new", keys={"old": key_text(OLD)},
                                      key_files={"new": tmp_path / "new.key"}, identifier_key=key_text(IDS))
        ring = Keyring.from_settings(settings)
        assert dict(ring.keys) == {"old": OLD, "new": NEW} and ring.current == "new"
        assert "new" in repr(ring) and base64.b64encode(NEW).decode() not in repr(ring)

    @pytest.mark.parametrize(("change", "message"), [
        ({"current_key": "missing"}, "current_key: key id 'missing' is not configured"),
        ({"keys": {"old": SecretStr("c2hvcnQ=")}}, "encryption.keys.old: a key is 32 bytes, this one is 5"),
        ({"keys": {"old": SecretStr("not base64!")}}, "encryption.keys.old: not base64"),
        ({"identifier_key": None}, "identifier_key or identifier_key_file is required"),
    ])
    def test_a_bad_configuration_says_what_and_where(self, change: dict[str, object], message: str) -> None:
        base = {"current_key": "old", "keys": {"old": key_text(OLD)}, "identifier_key": key_text(IDS)}
        with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
            Keyring.from_settings(EncryptionSettings(**{**base, **change}))  # type: ignore[arg-type]

    def test_a_missing_key_file_names_the_setting_and_the_file(self, tmp_path: Path) -> None:
        settings = EncryptionSettings(current_key="k", key_files={"k": tmp_path / "gone.key"},
                                      identifier_key=key_text(IDS))
        with pytest.raises(ConfigError, match=r"encryption.key_files.k: cannot read key file .*gone.key"):
            Keyring.from_settings(settings)

    def test_the_section_survives_the_launchers_config_round_trip(self, tmp_path: Path) -> None:
        settings = Settings(encryption=EncryptionSettings(
            current_key="new", keys={"new": key_text(NEW)}, key_files={"old": tmp_path / "old.key"},
            identifier_key_file=tmp_path / "ids.key", ui_origin="http://127.0.0.1:8233"))
        path = tmp_path / "config.toml"
        path.write_text(dump_settings(settings))
        assert load_settings(path).encryption == settings.encryption


class TestEmbeddedKeys:
    def test_the_first_start_creates_owner_only_keys_and_later_starts_keep_them(self, tmp_path: Path) -> None:
        data = tmp_path / "data"
        data.mkdir()
        config = data / "config.toml"
        first = embedded_encryption(data, config, ui_origin="http://127.0.0.1:8233")
        assert first is not None and first.current_key == FIRST_KEY_ID
        key_file = first.key_files[FIRST_KEY_ID]
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert first.identifier_key_file and stat.S_IMODE(first.identifier_key_file.stat().st_mode) == 0o600
        key = key_file.read_bytes()
        # a rotation made by hand in config.toml survives the next start
        rotated = first.model_copy(update={"current_key": "history-2", "keys": {"history-2": key_text(NEW)}})
        config.write_text(dump_settings(Settings(encryption=rotated)))
        again = embedded_encryption(data, config, ui_origin="http://127.0.0.1:9233")
        assert again is not None and again.current_key == "history-2" and again.ui_origin == "http://127.0.0.1:9233"
        assert key_file.read_bytes() == key

    def test_a_data_directory_with_plaintext_history_stays_plaintext(self, tmp_path: Path) -> None:
        config = tmp_path / "config.toml"
        config.write_text(dump_settings(Settings()))
        (tmp_path / "temporal.db").write_bytes(b"")
        assert embedded_encryption(tmp_path, config, ui_origin=None) is None
        assert not (tmp_path / "keys").exists()


class TestIds:
    def test_a_pause_id_is_a_stable_keyed_digest_never_the_name(self) -> None:
        first = ids.pause_workflow_id("employee-telemetry", IDS)
        assert first == ids.pause_workflow_id("employee-telemetry", IDS)
        assert first.startswith("pause/") and len(first) == len("pause/") + ids.DIGEST_HEX_CHARS
        assert "employee" not in first and "telemetry" not in first
        assert first != ids.pause_workflow_id("employee-telemetry", OLD)  # another key, another id
        assert first != ids.pause_workflow_id("employee-telemetry2", IDS)
        assert ids.pause_workflow_id("employee-telemetry", None) != first  # unkeyed: still no name

    def test_an_update_id_names_neither_actor_nor_action_and_repeats_for_a_retry(self) -> None:
        actor = Actor(id="local:carol", roles=["incident-commander"])
        uid = ids.update_id(IDS, actor.id, "approve_plan", "retry-key-1")
        assert uid == ids.update_id(IDS, actor.id, "approve_plan", "retry-key-1")
        assert "carol" not in uid and "approve" not in uid
        assert uid != ids.update_id(IDS, "local:pat", "approve_plan", "retry-key-1")
        # the parts are framed: moving a separator between them gives another id
        assert ids.name_digest(IDS, "p", "a\0b", "c") != ids.name_digest(IDS, "p", "a", "b\0c")

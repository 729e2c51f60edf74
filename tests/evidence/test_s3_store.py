"""S3EvidenceStore against a real S3-protocol server (moto): conditional create, recorded versions,
Object Lock, and offline verification of the bucket and of copies of it."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from structlog.testing import capture_logs
from typer.testing import CliRunner

from pausegate.cli.evidence import app
from pausegate.config import EvidenceSettings, Settings, TemporalSettings, dump_settings, load_settings
from pausegate.errors import ConfigError, EvidenceError, TargetRejectedError, TargetUnavailableError
from pausegate.evidence.s3_store import S3EvidenceStore
from pausegate.evidence.signing_keys import PUBLIC_KEY_FILENAME
from pausegate.evidence.verify import verify_bundle, verify_document
from tests.support.s3_server import ACCESS_KEY, SECRET_KEY, S3Server

from .conftest import aiter_of, make_records, rewrite_chunk

PAUSE = "employee-telemetry/20261129T0630Z-ab12"
CHAIN = f"{PAUSE}/audit/db-reads"
PREFIX = "pausegate/"
runner = CliRunner()


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    return s3_server.locked_bucket()


@pytest.fixture
def store(s3_server: S3Server, bucket: str, tmp_path: Path) -> Iterator[S3EvidenceStore]:
    s = S3EvidenceStore(s3_server.settings(bucket, prefix=PREFIX), tmp_path / "keys" / "signing.pem", chunk_records=40)
    yield s
    s.close()


def versions(s3: Any, bucket: str, name: str) -> list[dict[str, Any]]:
    listed = s3.list_object_versions(Bucket=bucket, Prefix=name).get("Versions", [])
    return [v for v in listed if v["Key"] == name]


def sync_latest(s3: Any, bucket: str, dest: Path) -> Path:
    """What ``aws s3 sync s3://bucket/prefix dest`` makes: the newest version of every object."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX):
        for obj in page.get("Contents", []):
            path = dest / obj["Key"].removeprefix(PREFIX)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
    return dest


class TestDocuments:
    def test_a_document_records_the_version_it_wrote_and_reads_back(self, store: S3EvidenceStore) -> None:
        ref = store.put_json(f"{PAUSE}/scope/telemetry", {"roles": ["analyst"]})
        assert ref.version_id
        assert store.read_json(ref.key, ref.sha256, version_id=ref.version_id) == {"roles": ["analyst"]}
        assert store.get(ref.key) == ref

    def test_every_object_is_locked_in_compliance_mode_for_the_configured_retention(
        self, store: S3EvidenceStore, s3_server: S3Server, bucket: str
    ) -> None:
        ref = store.put_json(f"{PAUSE}/report", {"status": "closed"})
        head = s3_server.client().head_object(Bucket=bucket, Key=f"{PREFIX}{ref.key}.json", VersionId=ref.version_id)
        assert head["ObjectLockMode"] == "COMPLIANCE"
        expected = datetime.now(UTC) + timedelta(days=1)
        assert abs((head["ObjectLockRetainUntilDate"] - expected).total_seconds()) < 300

    def test_a_second_write_of_the_key_is_refused_by_the_server(
        self, store: S3EvidenceStore, s3_server: S3Server, bucket: str
    ) -> None:
        ref = store.put_json(f"{PAUSE}/scope/telemetry", {"roles": ["analyst"]})
        with pytest.raises(ClientError) as refused:
            s3_server.client().put_object(
                Bucket=bucket, Key=f"{PREFIX}{ref.key}.json", Body=b'{"roles":[]}', IfNoneMatch="*"
            )
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412

    def test_identical_content_again_is_already_written_and_different_content_is_an_error(
        self, store: S3EvidenceStore, s3_server: S3Server, bucket: str
    ) -> None:
        key = f"{PAUSE}/scope/telemetry"
        ref = store.put_json(key, {"roles": ["analyst"]})
        assert store.put_json(key, {"roles": ["analyst"]}) == ref  # an activity's retry
        with pytest.raises(EvidenceError, match="already holds different content"):
            store.put_json(key, {"roles": []})
        # the refused write left nothing behind: one version of the document and of its signature
        assert len(versions(s3_server.client(), bucket, f"{PREFIX}{key}.json")) == 1
        assert len(versions(s3_server.client(), bucket, f"{PREFIX}{key}.json.sig")) == 1

    def test_a_new_version_by_someone_with_bucket_access_changes_nothing_that_is_read(
        self, store: S3EvidenceStore, s3_server: S3Server, bucket: str, tmp_path: Path
    ) -> None:
        key = f"{PAUSE}/scope/telemetry"
        ref = store.put_json(key, {"roles": ["analyst"]})
        s3 = s3_server.client()
        forged = s3.put_object(Bucket=bucket, Key=f"{PREFIX}{key}.json", Body=b'{"roles":[]}')  # no If-None-Match
        assert forged["VersionId"] != ref.version_id
        assert store.read_json(key, ref.sha256, version_id=ref.version_id) == {"roles": ["analyst"]}
        assert store.read_json(key) == {"roles": ["analyst"]}  # unrecorded: the version the store created
        assert store.get(key) == ref
        # the forged version itself is caught where it is read: not the recorded digest, nor signed
        with pytest.raises(EvidenceError, match="not the one its pause recorded"):
            store.read_json(key, ref.sha256, version_id=forged["VersionId"])
        with pytest.raises(EvidenceError, match="does not match its signature"):
            store.read_json(key, version_id=forged["VersionId"])
        # a copy of the newest versions (aws s3 sync) holds the forgery, and verification says so
        copy = sync_latest(s3, bucket, tmp_path / "synced")
        report = verify_document(copy.joinpath(*key.split("/")).with_suffix(".json"), copy / PUBLIC_KEY_FILENAME)
        assert not report.ok and "signature does not verify" in report.problems[0].message
        # the store's own copy reads the recorded version, and says what else the bucket holds
        mine = store.download(PAUSE, tmp_path / "copy", recorded={key: ref.version_id or ""})
        report = verify_document(mine.directory.joinpath(*key.split("/")).with_suffix(".json"),
                                 mine.directory / PUBLIC_KEY_FILENAME)
        assert report.ok, report.problems
        assert report.sha256 == ref.sha256
        assert any("2 versions in the bucket" in note and "the recorded one" in note for note in mine.notes)

    def test_deleting_a_locked_version_is_refused_and_a_delete_marker_hides_nothing(
        self, store: S3EvidenceStore, s3_server: S3Server, bucket: str
    ) -> None:
        ref = store.put_json(f"{PAUSE}/report", {"status": "closed"})
        s3 = s3_server.client()
        name = f"{PREFIX}{ref.key}.json"
        with pytest.raises(ClientError) as refused:
            s3.delete_object(Bucket=bucket, Key=name, VersionId=ref.version_id)
        assert refused.value.response["Error"]["Code"] == "AccessDenied"
        with pytest.raises(ClientError):
            s3.delete_object(Bucket=bucket, Key=name, VersionId=ref.version_id, BypassGovernanceRetention=True)
        s3.delete_object(Bucket=bucket, Key=name)  # only adds a delete marker
        assert store.read_json(ref.key, ref.sha256, version_id=ref.version_id) == {"status": "closed"}

    def test_junk_signature_versions_do_not_make_evidence_unreadable(
        self, store: S3EvidenceStore, s3_server: S3Server, bucket: str
    ) -> None:
        ref = store.put_json(f"{PAUSE}/report", {"status": "closed"})
        s3_server.client().put_object(Bucket=bucket, Key=f"{PREFIX}{ref.key}.json.sig", Body=b"{}")
        assert store.read_json(ref.key, ref.sha256, version_id=ref.version_id) == {"status": "closed"}

    def test_a_bucket_without_object_lock_is_refused(
        self, s3_server: S3Server, tmp_path: Path
    ) -> None:
        plain = s3_server.locked_bucket(lock=False)
        s = S3EvidenceStore(s3_server.settings(plain), tmp_path / "k.pem")
        try:
            with pytest.raises(EvidenceError, match="no Object Lock"):
                s.put_json(f"{PAUSE}/report", {"status": "closed"})
        finally:
            s.close()

    def test_another_deployments_key_in_the_prefix_is_refused(
        self, store: S3EvidenceStore, s3_server: S3Server, bucket: str, tmp_path: Path
    ) -> None:
        store.put_json(f"{PAUSE}/report", {"status": "closed"})
        other = S3EvidenceStore(s3_server.settings(bucket, prefix=PREFIX), tmp_path / "other.pem")
        try:
            with pytest.raises(EvidenceError, match="different public key"):
                other.put_json(f"{PAUSE}/scope/x", {"a": 1})
        finally:
            other.close()


class TestCredentials:
    async def test_credentials_are_never_logged_nor_in_errors(
        self, store: S3EvidenceStore, s3_server: S3Server, bucket: str, tmp_path: Path
    ) -> None:
        with capture_logs() as logs:
            store.put_json(f"{PAUSE}/report", {"status": "closed"})
            await store.seal(f"{CHAIN}/0", aiter_of(make_records(45)))
            with pytest.raises(TargetRejectedError) as failed:  # final: retrying cannot create the bucket
                S3EvidenceStore(s3_server.settings("no-such-bucket-here"), tmp_path / "k.pem")
        assert logs and "evidence_bundle_sealed" in {entry["event"] for entry in logs}
        said = repr(logs) + str(failed.value) + repr(s3_server.settings(bucket))
        assert SECRET_KEY not in said and ACCESS_KEY not in said
        assert "no-such-bucket-here" in str(failed.value)


class TestUnreachable:
    def test_a_bucket_that_cannot_be_reached_is_a_transient_error(self, tmp_path: Path) -> None:
        with socket.socket() as sock:  # a port nobody listens on
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        settings = S3Server(endpoint_url=f"http://127.0.0.1:{port}").settings("evidence-bucket")
        settings = settings.model_copy(update={"max_attempts": 1})
        s = S3EvidenceStore(settings, tmp_path / "k.pem")
        try:
            with pytest.raises(TargetUnavailableError, match="evidence bucket"):  # retried by the activity
                s.put_json(f"{PAUSE}/report", {"status": "closed"})
        finally:
            s.close()


class TestReadOnly:
    async def test_without_the_signing_key_it_reads_and_verifies_but_writes_nothing(
        self, store: S3EvidenceStore, s3_server: S3Server, bucket: str
    ) -> None:
        doc = store.put_json(f"{PAUSE}/report", {"status": "closed"})
        bundle, _ = await store.seal(f"{CHAIN}/0", aiter_of(make_records(45)))
        reader = S3EvidenceStore(s3_server.settings(bucket, prefix=PREFIX), None,
                                 expected_fingerprint=store.signing_key_sha256)
        try:
            assert reader.read_json(doc.key, doc.sha256, version_id=doc.version_id) == {"status": "closed"}
            assert len(list(reader.iter_bundle(bundle.key, bundle.sha256, version_id=bundle.version_id))) == 45
            with pytest.raises(EvidenceError, match="read-only"):
                reader.put_json(f"{PAUSE}/scope/x", {"a": 1})
        finally:
            reader.close()

    def test_a_public_key_in_the_bucket_that_is_not_the_pinned_one_is_refused(
        self, store: S3EvidenceStore, s3_server: S3Server, bucket: str
    ) -> None:
        doc = store.put_json(f"{PAUSE}/report", {"status": "closed"})
        reader = S3EvidenceStore(s3_server.settings(bucket, prefix=PREFIX), None, expected_fingerprint="0" * 64)
        try:
            with pytest.raises(EvidenceError, match="not the pinned"):
                reader.read_json(doc.key, doc.sha256, version_id=doc.version_id)
        finally:
            reader.close()


class TestBundles:
    async def test_a_sealed_bundle_round_trips_and_verifies(self, store: S3EvidenceStore, tmp_path: Path) -> None:
        first, _ = await store.seal(f"{CHAIN}/0", aiter_of(make_records(230)))
        second, chunks = await store.seal(f"{CHAIN}/1", aiter_of(make_records(50, offset=500)))
        assert first.version_id and second.version_id and chunks == 2
        records = list(store.iter_bundle(second.key, second.sha256, version_id=second.version_id))
        assert records == make_records(50, offset=500)
        copy = store.download(CHAIN, tmp_path / "copy")
        report = verify_bundle(copy.directory.joinpath(*CHAIN.split("/"), "1.bundle"),
                               copy.directory / PUBLIC_KEY_FILENAME)
        assert report.ok, report.problems
        assert (report.manifest_sha256, report.chain_index, report.previous_bundles_checked) == (second.sha256, 1, 1)
        assert copy.notes == []

    async def test_sealing_again_returns_the_sealed_bundle_without_reading_the_records(
        self, store: S3EvidenceStore
    ) -> None:
        ref, chunks = await store.seal(f"{CHAIN}/0", aiter_of(make_records(100)))
        read = []

        async def counted() -> Any:
            for record in make_records(100):
                read.append(record)
                yield record

        assert await store.seal(f"{CHAIN}/0", counted()) == (ref, chunks)
        assert read == []

    async def test_a_signature_left_by_a_crashed_attempt_does_not_block_sealing(
        self, store: S3EvidenceStore, s3_server: S3Server, bucket: str, tmp_path: Path
    ) -> None:
        # a crash between writing the signature and the manifest leaves a signature of another manifest
        s3_server.client().put_object(
            Bucket=bucket, Key=f"{PREFIX}{CHAIN}/0.bundle/manifest.sig", Body=b'{"algorithm":"ed25519"}'
        )
        ref, _ = await store.seal(f"{CHAIN}/0", aiter_of(make_records(60)))
        assert len(list(store.iter_bundle(ref.key, ref.sha256, version_id=ref.version_id))) == 60
        copy = store.download(CHAIN, tmp_path / "copy")
        report = verify_bundle(copy.directory.joinpath(*CHAIN.split("/"), "0.bundle"),
                               copy.directory / PUBLIC_KEY_FILENAME)
        assert report.ok, report.problems

    async def test_a_rewritten_chunk_version_is_not_read_and_a_copy_of_it_is_detected(
        self, store: S3EvidenceStore, s3_server: S3Server, bucket: str, tmp_path: Path
    ) -> None:
        ref, _ = await store.seal(f"{CHAIN}/0", aiter_of(make_records(60)))
        s3 = s3_server.client()
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{PREFIX}{CHAIN}/0.bundle/chunks/")["Contents"]
        name = listed[0]["Key"]
        local = tmp_path / "chunk.zst"
        local.write_bytes(s3.get_object(Bucket=bucket, Key=name)["Body"].read())
        rewrite_chunk(local, lambda records: records.replace(b"employee_", b"employee-", 1))
        s3.put_object(Bucket=bucket, Key=name, Body=local.read_bytes())
        assert list(store.iter_bundle(ref.key, ref.sha256, version_id=ref.version_id)) == make_records(60)
        synced = sync_latest(s3, bucket, tmp_path / "synced")
        report = verify_bundle(synced.joinpath(*CHAIN.split("/"), "0.bundle"), synced / PUBLIC_KEY_FILENAME)
        assert not report.ok
        assert any("modified" in p.message and p.file.endswith(name.rsplit("/", 1)[1]) for p in report.problems)

    async def test_two_hosts_sealing_one_key_at_once_end_with_one_bundle(
        self, store: S3EvidenceStore, s3_server: S3Server, bucket: str, tmp_path: Path
    ) -> None:
        # the same activity retried on a second worker host while the first attempt still runs
        other = S3EvidenceStore(s3_server.settings(bucket, prefix=PREFIX), store.signing_key_path, chunk_records=40)
        try:
            (a, _), (b, _) = await asyncio.gather(
                store.seal(f"{CHAIN}/0", aiter_of(make_records(200))),
                other.seal(f"{CHAIN}/0", aiter_of(make_records(200))),
            )
            assert a == b
            manifests = versions(s3_server.client(), bucket, f"{PREFIX}{CHAIN}/0.bundle/manifest.json")
            assert [v["VersionId"] for v in manifests] == [a.version_id]
            # and a bundle sealed by either host chains after it, readable by the other
            later, _ = await other.seal(f"{CHAIN}/1", aiter_of(make_records(10, offset=900)))
            assert list(store.iter_bundle(later.key, later.sha256, version_id=later.version_id)) == make_records(
                10, offset=900)
            copy = store.download(CHAIN, tmp_path / "copy")
            report = verify_bundle(copy.directory.joinpath(*CHAIN.split("/"), "1.bundle"),
                                   copy.directory / PUBLIC_KEY_FILENAME)
            assert report.ok, report.problems
            assert report.previous_bundles_checked == 1
        finally:
            other.close()

    async def test_a_manifest_planted_before_sealing_is_not_taken_and_does_not_block(
        self, store: S3EvidenceStore, s3_server: S3Server, bucket: str, tmp_path: Path
    ) -> None:
        # someone with write access to the bucket seals a forgery (their own key) under the pause's key first
        forger = S3EvidenceStore(s3_server.settings(bucket, prefix="forger/"), tmp_path / "forger.pem")
        try:
            await forger.seal(f"{CHAIN}/0", aiter_of(make_records(5)))
        finally:
            forger.close()
        s3 = s3_server.client()
        for obj in s3.list_objects_v2(Bucket=bucket, Prefix=f"forger/{CHAIN}/0.bundle/")["Contents"]:
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            s3.put_object(Bucket=bucket, Key=PREFIX + obj["Key"].removeprefix("forger/"), Body=body)
        assert store.get(f"{CHAIN}/0") is None  # not taken for the store's by any reader
        # sealing is not blocked: the bundle goes under a fresh name, the forgery listed as a plant
        ref, _ = await store.seal(f"{CHAIN}/0", aiter_of(make_records(5)))
        assert ref.key != f"{CHAIN}/0" and ref.key.startswith(f"{CHAIN}/0.")
        assert ref.plants is not None and f"{CHAIN}/0.bundle/manifest.json" in {p.name for p in ref.plants}
        assert store.get(f"{CHAIN}/0") == ref
        assert len(list(store.iter_bundle(f"{CHAIN}/0", ref.sha256))) == 5

    async def test_junk_on_top_of_a_chain_head_does_not_hide_it(
        self, store: S3EvidenceStore, s3_server: S3Server, bucket: str, tmp_path: Path
    ) -> None:
        ref, _ = await store.seal(f"{CHAIN}/0", aiter_of(make_records(10)))
        s3_server.client().put_object(Bucket=bucket, Key=f"{PREFIX}{CHAIN}/.chain-head.json", Body=b"{}")
        copy = store.download(CHAIN, tmp_path / "copy")
        report = verify_bundle(copy.directory.joinpath(*CHAIN.split("/"), "0.bundle"),
                               copy.directory / PUBLIC_KEY_FILENAME)
        assert report.ok, report.problems
        # and the next bundle still chains after the last one sealed
        later, _ = await store.seal(f"{CHAIN}/1", aiter_of(make_records(3, offset=50)))
        manifest = store.read_json(later.key, later.sha256, version_id=later.version_id)
        assert manifest["previous"] == {"key": ref.key, "manifest_sha256": ref.sha256}

    async def test_an_older_signed_head_put_again_is_not_the_head_a_copy_holds(
        self, store: S3EvidenceStore, s3_server: S3Server, bucket: str, tmp_path: Path
    ) -> None:
        first, _ = await store.seal(f"{CHAIN}/0", aiter_of(make_records(10)))
        second, _ = await store.seal(f"{CHAIN}/1", aiter_of(make_records(5, offset=50)))
        s3 = s3_server.client()
        name = f"{PREFIX}{CHAIN}/.chain-head.json"
        oldest = versions(s3, bucket, name)[-1]["VersionId"]
        old_head = s3.get_object(Bucket=bucket, Key=name, VersionId=oldest)["Body"].read()
        assert json.loads(old_head)["key"] == first.key  # genuine and signed, but naming the first bundle
        s3.put_object(Bucket=bucket, Key=name, Body=old_head)
        copy = store.download(CHAIN, tmp_path / "copy", digests={r.key: r.sha256 for r in (first, second)})
        assert json.loads(copy.directory.joinpath(*CHAIN.split("/"), ".chain-head.json").read_bytes())["key"] == (
            second.key
        )
        report = verify_bundle(copy.directory.joinpath(*CHAIN.split("/"), "1.bundle"),
                               copy.directory / PUBLIC_KEY_FILENAME)
        assert report.ok, report.problems

    async def test_a_key_holding_a_document_cannot_be_sealed(self, store: S3EvidenceStore) -> None:
        store.put_json(f"{CHAIN}/0", {"a": 1})
        with pytest.raises(EvidenceError, match="already holds a document"):
            await store.seal(f"{CHAIN}/0", aiter_of(make_records(1)))


class TestConfiguration:
    def test_the_s3_store_round_trips_through_the_configuration_file(self, s3_server: S3Server, tmp_path: Path) -> None:
        settings = Settings(evidence=EvidenceSettings(store="s3", s3=s3_server.settings("evidence-bucket")))
        path = tmp_path / "config.toml"
        path.write_text(dump_settings(settings))
        loaded = load_settings(path)
        assert loaded.evidence.store == "s3" and loaded.evidence.s3 is not None
        assert loaded.evidence.s3.secret_access_key is not None
        assert loaded.evidence.s3.secret_access_key.get_secret_value() == SECRET_KEY
        assert SECRET_KEY not in repr(loaded)

    def test_an_s3_store_without_its_table_is_a_configuration_error(self, tmp_path: Path) -> None:
        path = tmp_path / "config.toml"
        path.write_text('[evidence]\nstore = "s3"\n')
        with pytest.raises(ConfigError, match=r"evidence.*\[evidence\.s3\]"):
            load_settings(path)


def s3_config(path: Path, server: S3Server, bucket: str, fingerprint: str) -> Path:
    """A verifier's configuration: the bucket as the store, the key's pinned fingerprint (no signing
    key), and a Temporal that refuses connections."""
    settings = Settings(
        temporal=TemporalSettings(address="127.0.0.1:9"),
        evidence=EvidenceSettings(
            store="s3", s3=server.settings(bucket, prefix=PREFIX), signing_key_fingerprint=fingerprint,
        ),
    )
    path.write_text(dump_settings(settings))
    return path


class TestCommands:
    # synchronous: the commands run their own event loop, as they do from a shell
    def test_verify_reads_a_bundle_from_the_bucket_and_a_downloaded_copy(
        self, store: S3EvidenceStore, s3_server: S3Server, bucket: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        asyncio.run(store.seal(f"{CHAIN}/0", aiter_of(make_records(90))))
        ref, _ = asyncio.run(store.seal(f"{CHAIN}/1", aiter_of(make_records(30, offset=200))))
        doc = store.put_json(f"{PAUSE}/scope/telemetry", {"roles": ["analyst"]})
        config = s3_config(tmp_path / "config.toml", s3_server, bucket, store.signing_key_sha256)
        assert "secret_access_key" in config.read_text()  # the launcher's own file; never printed
        monkeypatch.setenv("PAUSEGATE_CONFIG", str(config))
        monkeypatch.chdir(tmp_path)
        result = runner.invoke(app, ["verify", ref.uri])
        assert result.exit_code == 0, result.output
        assert result.output.startswith(f"OK s3://{bucket}/{PREFIX}{CHAIN}/1.bundle")
        assert "records           30" in result.output and "1 earlier bundle(s)" in result.output
        assert "checked against itself only" in result.output  # Temporal is unreachable here
        result = runner.invoke(app, ["verify", "--json", doc.uri])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["sha256"] == doc.sha256
        copy = store.download(PAUSE, tmp_path / "copy")
        result = runner.invoke(app, ["verify", str(copy.directory.joinpath(*CHAIN.split("/"), "1.bundle"))])
        assert result.exit_code == 0, result.output
        assert SECRET_KEY not in result.output
        assert not (tmp_path / ".pausegate").exists()  # a verifier's machine gets no signing key of its own

    def test_verify_of_a_missing_or_invalid_reference_fails_saying_so(
        self, store: S3EvidenceStore, s3_server: S3Server, bucket: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        asyncio.run(store.seal(f"{CHAIN}/0", aiter_of(make_records(20))))
        config = s3_config(tmp_path / "config.toml", s3_server, bucket, store.signing_key_sha256)
        monkeypatch.setenv("PAUSEGATE_CONFIG", str(config))
        result = runner.invoke(app, ["verify", f"evidence://{PAUSE}/audit/nothing/0"])
        assert result.exit_code == 1 and "FAILED" in result.output
        result = runner.invoke(app, ["verify", "evidence://../etc/passwd"])
        assert result.exit_code == 2

"""``pausegate evidence verify`` and ``pausegate evidence records``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from pausegate.canonical import canonical_json
from pausegate.cli.evidence import app
from pausegate.errors import EvidenceError
from pausegate.evidence.bundle import signature_bytes
from pausegate.evidence.signing_keys import public_pem
from pausegate.evidence.verify import verified_records, verify_bundle, verify_document
from tests.support.fault_report import record_result

from .conftest import PAUSE, SealedTree, aiter_of, make_records, new_store, rewrite_chunk, write_config

runner = CliRunner()


@pytest.mark.usefixtures("pinned")
class TestVerifyCommand:
    def test_valid_bundle_prints_a_summary_and_exits_0(self, sealed_tree: SealedTree) -> None:
        bundle = SealedTree.pause_dir(sealed_tree.root) / sealed_tree.second
        result = runner.invoke(app, ["verify", str(bundle)])
        assert result.exit_code == 0, result.output
        assert result.output.startswith("OK ")
        assert "records           130" in result.output
        assert "1 earlier bundle(s)" in result.output

    def test_modified_chunk_exits_1_naming_file_and_entry(
        self, sealed_tree: SealedTree, tmp_path: Path
    ) -> None:
        copy = sealed_tree.copy(tmp_path / "copy")
        bundle = SealedTree.pause_dir(copy) / sealed_tree.second
        chunk = sorted((bundle / "chunks").iterdir())[0]
        rewrite_chunk(chunk, lambda records: records.replace(b"employee_", b"employee-", 1))
        result = runner.invoke(app, ["verify", str(bundle)])
        assert result.exit_code == 1
        assert f"fleet.bundle/chunks/{chunk.name} [entry " in result.output
        assert "modified" in result.output

    def test_wrong_public_key_exits_1(self, sealed_tree: SealedTree, tmp_path: Path) -> None:
        key = tmp_path / "k.pem"
        key.write_bytes(public_pem(Ed25519PrivateKey.generate().public_key()))
        bundle = SealedTree.pause_dir(sealed_tree.root) / sealed_tree.first
        result = runner.invoke(app, ["verify", str(bundle), "--public-key", str(key)])
        assert result.exit_code == 1
        assert "signature does not verify" in result.output

    def test_json_output(self, sealed_tree: SealedTree) -> None:
        bundle = SealedTree.pause_dir(sealed_tree.root) / sealed_tree.first
        result = runner.invoke(app, ["verify", "--json", str(bundle)])
        assert result.exit_code == 0
        doc = json.loads(result.output)
        assert doc["records"] == 230 and doc["problems"] == []

    def test_missing_bundle_exits_1(self, tmp_path: Path, sealed_tree: SealedTree) -> None:
        key = sealed_tree.root / "evidence" / "evidence-signing-key.pub.pem"
        result = runner.invoke(app, ["verify", str(tmp_path / "nope.bundle"), "--public-key", str(key)])
        assert result.exit_code == 1
        assert "does not exist" in result.output


class TestLegacyForms:
    """A document signature that does not name its key, or a chain head written before heads were
    signed, proves nothing alone: verify passes them only where the pause's record vouches for them."""

    async def test_without_a_record_a_keyless_signature_and_an_unsigned_head_fail(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        store = new_store(tmp_path, chunk_records=40)
        data = canonical_json({"grants": 3})
        document = store.document_path(f"{PAUSE}/scope/old")
        document.parent.mkdir(parents=True, exist_ok=True)
        document.write_bytes(data)
        document.with_name(document.name + ".sig").write_bytes(signature_bytes(store.signing_key, data))
        ref, _ = await store.seal(f"{PAUSE}/db-reads/0", aiter_of(make_records(10)))
        bundle = store.bundle_path(ref.key)
        head = bundle.parent / ".chain-head.json"
        head.write_bytes(canonical_json({"key": ref.key, "manifest_sha256": ref.sha256, "chain_index": 0}))
        config = write_config(tmp_path / "c.toml", fingerprint=store.signing_key_sha256)
        monkeypatch.setenv("PAUSEGATE_CONFIG", str(config))
        for path, file in ((document, "old.json.sig"), (bundle, ".chain-head.json")):
            result = runner.invoke(app, ["verify", str(path)])
            assert result.exit_code == 1, result.output
            assert result.output.startswith("FAILED ") and f"  {file}: " in result.output
            assert "no record of its pause vouches" in result.output
        # the library still reads both against themselves, saying what rests on the record
        assert verify_document(document, store.public_key_path).ok
        assert verify_bundle(bundle, store.public_key_path).ok


class TestVerifyReference:
    def test_an_evidence_reference_is_read_from_the_configured_directory(
        self, sealed_tree: SealedTree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        config = write_config(tmp_path / "c.toml", fingerprint=sealed_tree.fingerprint)
        config.write_text(config.read_text() + f'directory = "{sealed_tree.root / "evidence"}"\n')
        monkeypatch.setenv("PAUSEGATE_CONFIG", str(config))
        result = runner.invoke(app, ["verify", f"evidence://{PAUSE}/fleet"])
        assert result.exit_code == 0, result.output
        assert result.output.startswith(f"OK {SealedTree.pause_dir(sealed_tree.root) / sealed_tree.second}")
        assert "records           130" in result.output

    def test_a_reference_outside_any_pause_is_a_usage_error(
        self, sealed_tree: SealedTree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("PAUSEGATE_CONFIG", str(write_config(tmp_path / "c.toml", fingerprint=None)))
        assert runner.invoke(app, ["verify", "evidence://only-one-part"]).exit_code == 2
        assert runner.invoke(app, ["verify", "evidence://a/../b/c"]).exit_code == 2


@pytest.mark.usefixtures("pinned")
class TestRecordsCommand:
    def test_prints_the_sealed_records_in_order(self, sealed_tree: SealedTree) -> None:
        bundle = SealedTree.pause_dir(sealed_tree.root) / sealed_tree.second
        result = runner.invoke(app, ["records", str(bundle)])
        assert result.exit_code == 0, result.output
        assert [json.loads(line) for line in result.stdout.splitlines()] == make_records(130, offset=1000, tag="fleet")

    def test_a_modified_bundle_prints_no_record_and_exits_1(self, sealed_tree: SealedTree, tmp_path: Path) -> None:
        copy = sealed_tree.copy(tmp_path / "copy")
        bundle = SealedTree.pause_dir(copy) / sealed_tree.second
        chunk = sorted((bundle / "chunks").iterdir())[-1]
        rewrite_chunk(chunk, lambda records: records.replace(b"employee_", b"employee-", 1))
        result = runner.invoke(app, ["records", str(bundle)])
        assert result.exit_code == 1
        assert result.stdout == ""
        assert f"chunks/{chunk.name} [entry " in result.stderr and "modified" in result.stderr

    def test_a_chunk_changed_after_verification_stops_the_output(self, sealed_tree: SealedTree, tmp_path: Path) -> None:
        copy = sealed_tree.copy(tmp_path / "copy")
        bundle = SealedTree.pause_dir(copy) / sealed_tree.second
        report = verify_bundle(bundle, sealed_tree.public_key)
        assert report.ok
        chunk = sorted((bundle / "chunks").iterdir())[0]
        rewrite_chunk(chunk, lambda records: records.replace(b"employee_", b"employee-", 1))
        with pytest.raises(EvidenceError, match="changed after it was verified"):
            list(verified_records(bundle, report))


class TestDatabaseLogRecords:
    async def test_prints_the_servers_own_lines(self, tmp_path: Path) -> None:
        from pausegate.connectors.audit.pglog import PostgresLogSource

        from .conftest import new_store
        from .test_pglog import SCOPE, WINDOW, Log

        (tmp_path / "pglog").mkdir()
        log = Log(tmp_path / "pglog")
        kept = [log.add("alice", "statement: SELECT * FROM telemetry.keystrokes WHERE t = 'naïve \"q\"\\\\'"),
                log.add("bob", "statement: SELECT *\n FROM analytics.recent_keystrokes")]
        log.add("carol", "statement: SELECT 1")
        log.write()
        store = new_store(tmp_path)
        source = PostgresLogSource(tmp_path / "pglog", scope=SCOPE)
        await store.seal("p/audit/db-reads/0", source.records(*WINDOW))
        bundle = store.bundle_path("p/audit/db-reads/0")

        key = str(store.public_key_path)
        result = runner.invoke(app, ["records", str(bundle), "--public-key", key])
        assert result.exit_code == 0, result.output
        assert result.stdout_bytes == b"".join(line + b"\n" for line in kept)  # byte for byte, as written

        result = runner.invoke(app, ["records", "--sealed", str(bundle), "--public-key", key])
        assert result.exit_code == 0, result.output
        records = [json.loads(line) for line in result.stdout.splitlines()]
        assert [(r["file"], r["offset"]) for r in records] == [("postgresql-1.json", 0),
                                                                ("postgresql-1.json", len(kept[0]) + 1)]


class TestTrustAnchors:
    """What ``evidence verify`` and ``audit`` trust comes from a configuration the auditor names, or the
    system's, never from the directory they stand in (issue 29)."""

    @pytest.fixture
    def system_config(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        """Where the system configuration is looked for (nothing there until a test writes it)."""
        path = tmp_path / "etc" / "pausegate" / "config.toml"
        monkeypatch.setattr("pausegate.cli.trust_anchors.SYSTEM_CONFIG", path)
        monkeypatch.delenv("PAUSEGATE_CONFIG", raising=False)
        return path

    def test_an_evidence_package_cannot_bring_its_own_pin(
        self, sealed_tree: SealedTree, system_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An insider hands over forged evidence signed with their own key, with a
        ``.pausegate/config.toml`` pinning that key; the auditor runs verify inside the package."""
        package = tmp_path / "package"
        forger = new_store(package, chunk_records=40)
        asyncio.run(forger.seal(f"{PAUSE}/db-reads", aiter_of(make_records(12, tag="nobody-read-anything"))))
        (package / ".pausegate").mkdir()
        write_config(package / ".pausegate" / "config.toml", fingerprint=forger.signing_key_sha256)
        system_config.parent.mkdir(parents=True)
        write_config(system_config, fingerprint=sealed_tree.fingerprint)
        monkeypatch.chdir(package)
        result = runner.invoke(app, ["verify", str(SealedTree.pause_dir(package) / "db-reads.bundle")])
        assert result.exit_code == 1, result.output
        assert result.output.startswith("FAILED ") and f"not the pinned {sealed_tree.fingerprint}" in result.output
        assert f"trust anchors     {system_config} (system configuration)" in result.output
        assert f"key pin           {sealed_tree.fingerprint}" in result.output
        # With no system configuration either, the package's pin is still not read: nothing pins its key.
        system_config.unlink()
        alone = runner.invoke(app, ["verify", str(SealedTree.pause_dir(package) / "db-reads.bundle")])
        assert alone.exit_code == 1 and "pinned nowhere" in alone.output
        assert "trust anchors     none (no configuration" in alone.output
        record_result("trust root from the working directory", "evidence package with its own config pinning "
                      "the forger's key", injected=1, outcome="FAILED: the key is not the system's pin; the "
                      "package's config is not read")

    def test_the_anchors_used_are_printed_with_the_result(
        self, sealed_tree: SealedTree, system_config: Path, tmp_path: Path
    ) -> None:
        config = write_config(tmp_path / "auditor.toml", fingerprint=sealed_tree.fingerprint,
                              temporal_address="127.0.0.1:9")
        bundle = str(SealedTree.pause_dir(sealed_tree.root) / sealed_tree.second)
        result = runner.invoke(app, ["verify", bundle, "--config", str(config)])
        assert result.exit_code == 0, result.output
        assert result.output.startswith("OK ")
        assert result.output.splitlines()[-3:] == [
            f"  trust anchors     --config {config}",
            f"  key pin           {sealed_tree.fingerprint}",
            "  Temporal          127.0.0.1:9 (namespace default)",
        ]
        as_json = json.loads(runner.invoke(app, ["verify", bundle, "--config", str(config), "--json"]).output)
        assert as_json["records"] == 130 and as_json["trust_anchors"] == {
            "source": f"--config {config}", "why": None, "signing_key_fingerprint": sealed_tree.fingerprint,
            "temporal_address": "127.0.0.1:9", "temporal_namespace": "default",
        }

    @pytest.mark.parametrize("named", ["--config", "PAUSEGATE_CONFIG", "system"])
    def test_a_configuration_that_does_not_load_fails_and_pins_nothing(
        self, named: str, sealed_tree: SealedTree, system_config: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        broken = system_config if named == "system" else tmp_path / "broken.toml"
        broken.parent.mkdir(parents=True, exist_ok=True)
        broken.write_text('[evidence]\nsigning_key_fingerprint = "not a pin\n')
        args = ["--config", str(broken)] if named == "--config" else []
        if named == "PAUSEGATE_CONFIG":
            monkeypatch.setenv("PAUSEGATE_CONFIG", str(broken))
        bundle = str(SealedTree.pause_dir(sealed_tree.root) / sealed_tree.second)
        for command in (["verify", bundle, "--public-key", str(sealed_tree.public_key)],
                        ["audit", "employee-telemetry"]):
            result = runner.invoke(app, [*command, *args])
            assert result.exit_code == 2, (command, result.output)
            assert "does not load; nothing is trusted" in result.output and "OK" not in result.output

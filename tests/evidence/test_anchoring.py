"""Evidence held against what its pause recorded, offline: documents bound to their key, the signed
chain head, the pinned key, and the audit of a pause's evidence directory against a record.

The same substitutions run end to end (Temporal, the CLI, the API) in
tests/workflows/test_evidence_anchoring.py; here each rule is shown on its own, fast.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from pausegate.config import EvidenceSettings, Settings, dump_settings
from pausegate.errors import EvidenceError
from pausegate.evidence import bundle as bundlemod
from pausegate.evidence.anchor import (
    REPORT_FINGERPRINT,
    anchors_of,
    audit_evidence,
    check_against_record,
    recorded_references,
)
from pausegate.evidence.files import canonical_json, sha256_hex
from pausegate.evidence.layout import audit_key, exposure_checkpoint_key, plan_diff_key, report_key, scope_key
from pausegate.evidence.open_store import open_evidence_store
from pausegate.evidence.report import render_markdown
from pausegate.evidence.report_audit import audit_report_file
from pausegate.evidence.signing_keys import fingerprint, pinned_fingerprint, public_pem
from pausegate.evidence.store import LocalEvidenceStore
from pausegate.evidence.verify import verify_bundle, verify_document
from pausegate.models.access import DatasetContainment
from pausegate.models.base import Model
from pausegate.models.evidence import EvidenceRef, SnapshotResult
from pausegate.models.people import Severity
from pausegate.models.phase import Phase
from pausegate.models.state import ContainmentProgress, PauseState
from pausegate.models.steps import ReportInput

from .conftest import aiter_of, make_records, new_store, write_config

OURS = "p/20261129T063000Z-aaaaaaaa"
THEIRS = "p/20261128T063000Z-bbbbbbbb"
T0 = datetime(2026, 11, 29, 6, 30, tzinfo=UTC)


async def sealed_pause(store: LocalEvidenceStore, pause_key: str) -> PauseState:
    """A pause's evidence as the workflow leaves it (a chain of two bundles and a scope), and its record."""
    snapshots = []
    for segment in (0, 1):
        ref, chunks = await store.seal(
            audit_key(pause_key, "db-reads", segment), aiter_of(make_records(30, offset=100 * segment, tag=pause_key))
        )
        snapshots.append(SnapshotResult(source="db-reads", window_start=T0, window_end=T0, bundle=ref, chunks=chunks))
    scope = store.put_json(scope_key(pause_key, "telemetry"), {"dataset": "telemetry", "pause": pause_key})
    return PauseState(
        pause_id="pause/p", incident_id=pause_key.replace("/", "-"), evidence_key=pause_key, program="p",
        phase=Phase.UNDER_REVIEW, reason="telemetry readable company-wide", severity=Severity.HIGH,
        commander="carol", started_at=T0, quorum=2, checklist=[],
        containment=ContainmentProgress(
            evidence=snapshots,
            datasets=[DatasetContainment(dataset="telemetry", scope=scope, grants_recorded=3, roles_with_access=2,
                                         revoked=3, verified=True)],
        ),
    )


def bundle(store: LocalEvidenceStore, state: PauseState, n: int) -> Path:
    return store.bundle_path(state.containment.evidence[n].bundle.key)


def head_of(state_bundle: Path) -> Path:
    return state_bundle.parent / bundlemod.CHAIN_HEAD


def audit(store: LocalEvidenceStore, state: PauseState) -> list[tuple[str, str, str]]:
    report = audit_evidence(store.root, state, record="test record", pinned=[store.signing_key_sha256])
    return [(line.status, line.file, line.message) for line in report.lines]


def failed(lines: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
    return [(file, message) for status, file, message in lines if status == "FAILED"]


def forger_key(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    path.chmod(0o600)
    return path


class TestDocumentsReadBack:
    def test_only_the_recorded_document_is_read(self, store: LocalEvidenceStore) -> None:
        ref = store.put_json("p/x/scope/telemetry", {"grants": 3})
        assert store.read_json("p/x/scope/telemetry", expected_sha256=ref.sha256) == {"grants": 3}
        with pytest.raises(EvidenceError, match="'p/x/scope/telemetry' is not the one its pause recorded"):
            store.read_json("p/x/scope/telemetry", expected_sha256="0" * 64)

    def test_a_document_copied_from_another_pause_is_refused_without_any_digest(
        self, store: LocalEvidenceStore
    ) -> None:
        store.put_json(f"{THEIRS}/scope/telemetry", {"grants": 3})
        store.put_json(f"{OURS}/scope/telemetry", {"grants": 1})
        for suffix in ("", ".sig"):
            theirs = store.document_path(f"{THEIRS}/scope/telemetry")
            shutil.copyfile(theirs.with_name(theirs.name + suffix),
                            store.document_path(f"{OURS}/scope/telemetry").with_name(theirs.name + suffix))
        with pytest.raises(EvidenceError, match=f"signed for key '{THEIRS}/scope/telemetry', found at key"):
            store.read_json(f"{OURS}/scope/telemetry")
        report = verify_document(store.document_path(f"{OURS}/scope/telemetry"), store.public_key_path)
        assert [(p.file, p.message) for p in report.problems] == [(
            "telemetry.json.sig",
            f"signature names key '{THEIRS}/scope/telemetry', but lies at '{OURS}/scope/telemetry': "
            "copied from elsewhere",
        )]

    def test_a_document_signed_before_signatures_named_their_key_is_read_only_against_its_digest(
        self, store: LocalEvidenceStore
    ) -> None:
        data = canonical_json({"grants": 3})
        path = store.document_path("p/x/scope/old")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.with_name(path.name + ".sig").write_bytes(bundlemod.signature_bytes(store.signing_key, data))
        with pytest.raises(EvidenceError, match="signed before signatures named their key"):
            store.read_json("p/x/scope/old")
        assert store.read_json("p/x/scope/old", expected_sha256=sha256_hex(data)) == {"grants": 3}
        assert verify_document(path, store.public_key_path).ok  # it still verifies against itself

    async def test_a_manifest_copied_under_another_key_is_refused(self, store: LocalEvidenceStore) -> None:
        await store.seal(f"{THEIRS}/audit/db-reads/0", aiter_of(make_records(5)))
        shutil.copytree(store.bundle_path(f"{THEIRS}/audit/db-reads/0"), store.bundle_path(f"{OURS}/audit/db-reads/0"))
        with pytest.raises(EvidenceError, match="is for another key"):
            store.read_json(f"{OURS}/audit/db-reads/0")
        with pytest.raises(EvidenceError, match="is for another key"):
            list(store.iter_bundle(f"{OURS}/audit/db-reads/0"))


class TestBundlesWhereTheyLie:
    async def test_another_pauses_bundles_over_this_pauses_paths_name_the_other_pause(
        self, store: LocalEvidenceStore
    ) -> None:
        theirs, ours = await sealed_pause(store, THEIRS), await sealed_pause(store, OURS)
        chain = bundle(store, ours, 0).parent
        shutil.rmtree(chain)
        shutil.copytree(bundle(store, theirs, 0).parent, chain)
        report = verify_bundle(bundle(store, ours, 0), store.public_key_path)
        assert ("0.bundle/manifest.json", f"manifest names key '{THEIRS}/audit/db-reads/0', but lies at "
                f"'{OURS}/audit/db-reads/0': copied from elsewhere") in [(p.file, p.message) for p in report.problems]
        assert any(file == f"{OURS}/audit/db-reads/0.bundle/manifest.json" and "not the recorded file" in message
                   for file, message in failed(audit(store, ours)))


class TestChainHead:
    async def test_a_deleted_newest_bundle_is_named_by_the_signed_head(self, store: LocalEvidenceStore) -> None:
        state = await sealed_pause(store, OURS)
        shutil.rmtree(bundle(store, state, 1))
        report = verify_bundle(bundle(store, state, 0), store.public_key_path)
        assert [(p.file, p.message) for p in report.problems] == [
            ("1.bundle", "bundle is missing (deleted or renamed)"),
            (".chain-head.json",
             f"chain head names '{OURS}/audit/db-reads/1', which is gone: a newer bundle was deleted"),
        ]

    async def test_a_deleted_head_is_missed(self, store: LocalEvidenceStore) -> None:
        state = await sealed_pause(store, OURS)
        shutil.rmtree(bundle(store, state, 1))
        head_of(bundle(store, state, 0)).unlink()
        report = verify_bundle(bundle(store, state, 0), store.public_key_path)
        assert [(p.file, p.message) for p in report.problems] == [
            (".chain-head.json", "chain head is missing (deleted?): nothing shows which bundle is the newest")
        ]

    async def test_an_earlier_head_put_back_fools_the_bundle_alone_but_not_the_record(
        self, store: LocalEvidenceStore
    ) -> None:
        """A signed head cannot be forged, but an insider may have kept an earlier genuine one: only the
        record, which names the newest bundle, tells."""
        first, _ = await store.seal(audit_key(OURS, "db-reads", 0), aiter_of(make_records(5)))
        earlier_head = head_of(store.bundle_path(first.key)).read_bytes()
        state = await sealed_pause(store, OURS)  # seals segment 1 after the 0 already there
        shutil.rmtree(bundle(store, state, 1))
        head_of(bundle(store, state, 0)).write_bytes(earlier_head)
        older = bundle(store, state, 0)
        alone = verify_bundle(older, store.public_key_path)
        assert alone.ok, alone.problems
        against = check_against_record(older, alone, state, store.root, "test record")
        first_digest, newest_digest = (e.bundle.sha256[:12] for e in state.containment.evidence)
        assert [(p.file, p.message) for p in against] == [
            ("1.bundle", f"the newest bundle the pause recorded for this chain is missing (deleted): "
                         f"'{OURS}/audit/db-reads/1'"),
            (".chain-head.json", f"chain head names '{OURS}/audit/db-reads/0' ({first_digest}), but the newest "
                                 f"bundle the pause recorded for this chain is '{OURS}/audit/db-reads/1' "
                                 f"({newest_digest})"),
        ]

    async def test_bundles_under_an_unsigned_head_of_old_still_verify_against_themselves(
        self, store: LocalEvidenceStore
    ) -> None:
        state = await sealed_pause(store, OURS)
        newest = state.containment.evidence[1].bundle
        legacy = {"key": newest.key, "manifest_sha256": newest.sha256, "chain_index": 1}
        head_of(bundle(store, state, 0)).write_bytes(canonical_json(legacy))
        for n in (0, 1):
            report = verify_bundle(bundle(store, state, n), store.public_key_path)
            assert report.ok, report.problems
            assert any("unsigned" in note for note in report.notes)
        # and the record still vouches for the chain, saying the head is of old
        lines = audit(store, state)
        assert not failed(lines)
        assert ("NOTE", f"{OURS}/audit/db-reads/.chain-head.json",
                "chain head is unsigned (written before heads were signed); the record decides") in lines

    async def test_a_forged_unsigned_head_naming_an_older_bundle_fails_against_the_record(
        self, store: LocalEvidenceStore
    ) -> None:
        state = await sealed_pause(store, OURS)
        older = state.containment.evidence[0].bundle
        shutil.rmtree(bundle(store, state, 1))
        head_of(bundle(store, state, 0)).write_bytes(
            canonical_json({"key": older.key, "manifest_sha256": older.sha256, "chain_index": 0}))
        problems = failed(audit(store, state))
        assert (f"{OURS}/audit/db-reads/.chain-head.json",
                f"chain head names '{older.key}' ({older.sha256[:12]}), but the newest bundle the pause recorded for "
                f"this chain is '{OURS}/audit/db-reads/1' ({state.containment.evidence[1].bundle.sha256[:12]})"
                ) in problems

    async def test_a_retry_after_a_crash_before_the_head_was_written_brings_the_head_up_to_date(
        self, store: LocalEvidenceStore
    ) -> None:
        await store.seal("p/x/a", aiter_of(make_records(3)))
        stale = head_of(store.bundle_path("p/x/a")).read_bytes()
        b, _ = await store.seal("p/x/b", aiter_of(make_records(3, offset=9)))
        head_of(store.bundle_path("p/x/a")).write_bytes(stale)  # the process died between rename and head
        again, _ = await store.seal("p/x/b", aiter_of(make_records(3, offset=9)))
        assert again == b
        head = bundlemod.parse_head(head_of(store.bundle_path("p/x/b")).read_bytes())
        assert (head.key, head.manifest_sha256) == ("p/x/b", b.sha256)
        assert bundlemod.head_signature_problem(store.signing_key.public_key(), head) is None

    async def test_a_bundle_planted_as_the_next_link_is_not_followed_by_the_sealer(
        self, store: LocalEvidenceStore, tmp_path: Path
    ) -> None:
        """A bundle signed by another key whose previous link is the chain's tip must not become what
        the next sealed bundle links to (it would enter the chain the deployment signs)."""
        b, _ = await store.seal("p/x/b", aiter_of(make_records(3)))
        forged = new_store(tmp_path / "forger")
        await forged.seal("p/x/c", aiter_of(make_records(3, tag="forged")))
        manifest = bundlemod.parse_manifest((forged.bundle_path("p/x/c") / "manifest.json").read_bytes())
        entries, head = bundlemod.chain_entries(manifest.entries, b.sha256)
        linked = manifest.model_copy(update={
            "previous": bundlemod.PreviousBundle(key="p/x/b", manifest_sha256=b.sha256), "chain_index": 1,
            "entries": entries, "head": head})
        planted = store.bundle_path("p/x/c")
        shutil.copytree(forged.bundle_path("p/x/c"), planted)
        data = canonical_json(linked.model_dump(mode="json"))
        (planted / "manifest.json").write_bytes(data)
        (planted / "manifest.sig").write_bytes(bundlemod.signature_bytes(forged.signing_key, data))
        await store.seal("p/x/d", aiter_of(make_records(3, offset=5)))
        assert store.read_json("p/x/d")["previous"] == {"key": "p/x/b", "manifest_sha256": b.sha256}


class TestPinnedKey:
    async def test_the_key_beside_the_evidence_is_used_only_when_its_fingerprint_is_pinned(
        self, store: LocalEvidenceStore, tmp_path: Path
    ) -> None:
        state = await sealed_pause(store, OURS)
        newest = bundle(store, state, 1)
        assert verify_bundle(newest, pinned={store.signing_key_sha256}).ok
        unpinned = verify_bundle(newest, pinned=set())
        assert [p.file for p in unpinned.problems] == [str(store.public_key_path)]
        assert "is pinned nowhere" in unpinned.problems[0].message
        # the forger's key put beside the evidence
        other = Ed25519PrivateKey.generate().public_key()
        store.public_key_path.write_bytes(public_pem(other))
        replaced = verify_bundle(newest, pinned={store.signing_key_sha256})
        assert [(p.file, p.message.split(":")[0]) for p in replaced.problems] == [(
            str(store.public_key_path),
            f"public key beside the evidence has fingerprint {fingerprint(other)}, "
            f"not the pinned {store.signing_key_sha256}",
        )]

    async def test_without_a_pin_given_the_configuration_pins_it(
        self, store: LocalEvidenceStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        state = await sealed_pause(store, OURS)
        newest = bundle(store, state, 1)
        pinning = write_config(tmp_path / "c.toml", fingerprint=store.signing_key_sha256)
        monkeypatch.setenv("PAUSEGATE_CONFIG", str(pinning))
        assert verify_bundle(newest).ok
        monkeypatch.setenv("PAUSEGATE_CONFIG", str(write_config(tmp_path / "d.toml", fingerprint="ab" * 32)))
        assert "not the pinned " + "ab" * 32 in verify_bundle(newest).problems[0].message

    def test_the_worker_refuses_a_signing_key_other_than_the_pinned_one(self, tmp_path: Path) -> None:
        with pytest.raises(EvidenceError, match="not the pinned " + "ab" * 32):
            LocalEvidenceStore(tmp_path / "evidence", tmp_path / "keys" / "k.pem", expected_fingerprint="ab" * 32)

    def test_the_embedded_stack_pins_the_key_on_first_start_and_keeps_that_pin(self, tmp_path: Path) -> None:
        config, key = tmp_path / "config.toml", tmp_path / "keys" / "evidence.pem"
        first = pinned_fingerprint(config, key)
        evidence = EvidenceSettings(directory=tmp_path / "evidence", signing_key=key, signing_key_fingerprint=first)
        assert open_evidence_store(evidence).signing_key_sha256 == first
        config.write_text(dump_settings(Settings(evidence=evidence)))
        key.unlink()
        forger_key(key)  # someone replaced the deployment's key between two starts
        assert pinned_fingerprint(config, key) == first
        with pytest.raises(EvidenceError, match=f"not the pinned {first}"):
            open_evidence_store(evidence)


class TestAudit:
    async def test_untouched_evidence_passes_with_a_line_per_recorded_item(self, store: LocalEvidenceStore) -> None:
        state = await sealed_pause(store, OURS)
        (store.root / OURS / "scope" / ".lock").touch()  # the store's own lock files are not evidence
        lines = audit(store, state)
        assert [(s, f) for s, f, _ in lines] == [
            ("OK", f"{OURS}/audit/db-reads/0.bundle"),
            ("OK", f"{OURS}/audit/db-reads/1.bundle"),
            ("OK", f"{OURS}/scope/telemetry.json"),
            ("OK", f"{OURS}/audit/db-reads/.chain-head.json"),
        ]

    async def test_what_the_record_does_not_name_fails_and_debris_is_noted(self, store: LocalEvidenceStore) -> None:
        state = await sealed_pause(store, OURS)
        pause = store.root / OURS
        (pause / "scope" / "notes.txt").write_text("added")
        shutil.copytree(bundle(store, state, 0), pause / "audit" / "db-reads" / "7.bundle")
        (pause / "scope" / f".telemetry.json.tmp-{'0' * 32}").write_text("{")
        (pause / "audit" / "db-reads" / f".2.bundle.tmp-{'f' * 32}" / "chunks").mkdir(parents=True)
        lines = audit(store, state)
        assert failed(lines) == [
            (f"{OURS}/audit/db-reads/7.bundle", "bundle the record does not name (added, or copied from elsewhere)"),
            (f"{OURS}/scope/notes.txt", "file the record does not name (added, or copied from elsewhere)"),
        ]
        assert ("NOTE", f"{OURS}/scope/.telemetry.json.tmp-{'0' * 32}",
                "debris of an interrupted write: not evidence, safe to remove") in lines
        assert ("NOTE", f"{OURS}/audit/db-reads/.2.bundle.tmp-{'f' * 32}",
                "debris of an interrupted seal: not evidence, safe to remove") in lines

    async def test_a_replaced_plans_diff_is_noted_but_one_copied_from_another_pause_fails(
        self, store: LocalEvidenceStore
    ) -> None:
        state = await sealed_pause(store, OURS)
        replaced = plan_diff_key(OURS, "1" * 64, "telemetry")
        store.put_json(replaced, {"loses": ["employee_0001"]})  # its plan was replaced: the state dropped it
        copied = plan_diff_key(THEIRS, "2" * 64, "telemetry")
        store.put_json(copied, {"loses": []})
        target = store.document_path(plan_diff_key(OURS, "2" * 64, "telemetry"))
        target.parent.mkdir(parents=True)
        for suffix in ("", ".sig"):
            source = store.document_path(copied)
            shutil.copyfile(source.with_name(source.name + suffix), target.with_name(target.name + suffix))
        lines = audit(store, state)
        assert ("NOTE", f"{replaced}.json", "diff of a plan the record no longer names (replaced or rejected): signed "
                "for this pause, but no recorded digest vouches for its content") in lines
        # the copy's signature names the other pause's key, so nothing says this pause wrote it
        copy = f"{OURS}/plans/{'2' * 16}/telemetry.json"
        assert failed(lines) == [(copy, "file the record does not name (added, or copied from elsewhere)")]

    async def test_a_checkpoint_of_the_exposure_step_is_noted_but_one_from_another_pause_fails(
        self, store: LocalEvidenceStore
    ) -> None:
        state = await sealed_pause(store, OURS)
        ours = exposure_checkpoint_key(OURS, 200_000)
        store.put_json(ours, {"records": 200_000})  # where a retry of who-saw-what went on from
        theirs = exposure_checkpoint_key(THEIRS, 400_000)
        store.put_json(theirs, {"records": 400_000})
        copied = store.document_path(exposure_checkpoint_key(OURS, 400_000))
        for suffix in ("", ".sig"):
            source = store.document_path(theirs)
            shutil.copyfile(source.with_name(source.name + suffix), copied.with_name(copied.name + suffix))
        lines = audit(store, state)
        assert ("NOTE", f"{ours}.json", "checkpoint of the who-saw-what step (where a retry went on from): signed "
                "for this pause, but no recorded digest vouches for its content") in lines
        assert failed(lines) == [(f"{exposure_checkpoint_key(OURS, 400_000)}.json",
                                  "file the record does not name (added, or copied from elsewhere)")]

    async def test_offline_the_final_report_is_the_root_of_trust(self, store: LocalEvidenceStore) -> None:
        state = await sealed_pause(store, OURS)
        document = {"pause_key": OURS, "status": state.as_document(), "restore": [], "resume": None,
                    REPORT_FINGERPRINT: store.signing_key_sha256}
        ref = store.put_json(report_key(OURS), document)
        path = store.document_path(report_key(OURS))
        report = audit_report_file(path)  # no pin given: the report names the key
        assert report.ok, report.problems
        assert report.lines[0].message.startswith(f"root of trust: this report, sha256 {ref.sha256}")
        assert report.signing_key_sha256 == store.signing_key_sha256
        shutil.rmtree(bundle(store, state, 1))
        assert (f"{OURS}/audit/db-reads/1.bundle", "bundle is missing (deleted)") in [
            (p.file, p.message.split(":")[0]) for p in audit_report_file(path).problems]
        # a report naming another key than the configuration pins is refused
        pinned = audit_report_file(path, pinned=["ab" * 32])
        assert any("configuration pins " + "ab" * 32 in p.message for p in pinned.problems)

    async def test_the_report_lists_every_recorded_digest_and_the_key(self, store: LocalEvidenceStore) -> None:
        state = await sealed_pause(store, OURS)
        document = json.loads(canonical_json({"pause_key": OURS, "status": state.as_document(), "restore": [],
                                              "resume": None, REPORT_FINGERPRINT: store.signing_key_sha256}))
        markdown = render_markdown(ReportInput.model_validate(document))
        assert f"Signing key fingerprint: `{store.signing_key_sha256}`" in markdown
        for anchor in anchors_of(state):
            assert f"| `{anchor.key}` | {anchor.kind} |" in markdown and f"`{anchor.sha256}`" in markdown


def test_anchors_name_every_recorded_reference() -> None:
    ref = EvidenceRef(uri="evidence://p/x/timeline/00000", sha256="c" * 64)
    state = PauseState(
        pause_id="pause/p", incident_id="i", evidence_key="p/x", program="p", phase=Phase.RESUMED, reason="r",
        severity=Severity.HIGH, commander="carol", started_at=T0, quorum=2, checklist=[], timeline_archived=[ref],
        report=EvidenceRef(uri="evidence://p/x/report", sha256="d" * 64),
    )
    assert [(a.key, a.kind) for a in anchors_of(state)] == [("p/x/timeline/00000", "document"),
                                                            ("p/x/report", "document")]


def test_references_anywhere_in_the_record_are_found() -> None:
    class Later(Model):  # a document some later version of the state records
        notes: list[EvidenceRef]

    ref = EvidenceRef(uri="evidence://p/x/notes/0", sha256="e" * 64)
    assert list(recorded_references(Later(notes=[ref]))) == [("notes[0]", ref)]

"""Evidence names someone else writes first, on the real stack: an insider with write access to the
evidence directory or bucket watches for a new pause and plants objects at every name its evidence
will take, before the store writes any of them. The pause still seals, reports each plant (its
record and its final report list name, size and digest), and ``pausegate evidence audit`` finds
every recorded item and nothing unexplained.

The plants are made synchronously at the store's first call for the new pause, which is the attack
without its race: the insider wins every name."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pausegate.config import EvidenceSettings, Settings, TemporalSettings, dump_settings
from pausegate.evidence.anchor import PLANTS, plants_of
from pausegate.evidence.bundle import CHAIN_HEAD, CHAIN_LOCK, MANIFEST
from pausegate.evidence.interface import EvidenceStore
from pausegate.evidence.layout import (
    audit_key,
    catalog_key,
    copies_found_key,
    data_subjects_key,
    exposure_key,
    report_key,
    scope_key,
)
from pausegate.evidence.report import render_markdown
from pausegate.models.state import PauseState
from pausegate.models.steps import ReportInput
from tests.support.encryption import TEST_ENCRYPTION
from tests.support.fault_report import record_result
from tests.support.harness import Harness, HarnessFactory
from tests.support.s3_server import S3Server
from tests.workflows.test_evidence_anchoring import decommissioned_pause, pausegate

PREFIX = "pausegate/"
FORGED = b'{"forged":"by someone with write access to the evidence"}'
FAULT = "evidence names planted before the store writes"
STORE_METHODS = ("get", "put_json", "put_canonical", "read_json", "seal", "seal_blocks", "iter_bundle")


def predictable_names(h: Harness, pause: str) -> tuple[list[str], list[str]]:
    """(document keys, bundle keys) the pause's evidence takes, as anyone who sees its key computes them
    (the names a pause of this test writes: a name it never writes stays what it is, a file its record
    does not name)."""
    datasets = [d.name for d in h.runbook.datasets]
    sources = [s.name for s in h.runbook.audit_sources]
    documents = [scope_key(pause, d) for d in datasets] + [catalog_key(pause, d) for d in datasets] + [
        exposure_key(pause), data_subjects_key(pause), copies_found_key(pause), report_key(pause)]
    bundles = [audit_key(pause, s, segment) for s in sources for segment in (0, 1)]
    return documents, bundles


def plant_first(h: Harness, plant: Callable[[str], None]) -> None:
    """Run ``plant(pause key)`` at the evidence store's first call for the program's pause, before it
    writes anything there."""
    store: Any = h.connectors.evidence_store
    lock = threading.Lock()
    planted: set[str] = set()

    def watched(method: Callable[..., Any]) -> Callable[..., Any]:
        def call(key: str, *args: Any, **kwargs: Any) -> Any:
            if key.startswith(f"{h.program}/"):
                pause = "/".join(key.split("/")[:2])
                with lock:
                    if pause not in planted:
                        planted.add(pause)
                        plant(pause)
            return method(key, *args, **kwargs)
        return call

    for name in STORE_METHODS:
        setattr(store, name, watched(getattr(store, name)))


def plant_in_directory(root: Path, h: Harness) -> Callable[[str], None]:
    def plant(pause: str) -> None:
        documents, bundles = predictable_names(h, pause)
        for key in documents + bundles:
            path = root.joinpath(*key.split("/"))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.with_name(path.name + ".json").write_bytes(FORGED)
            path.with_name(path.name + ".json.sig").write_bytes(b"{}")
        for key in bundles:
            bundle = root.joinpath(*key.split("/")).with_suffix(".bundle")
            bundle.mkdir()
            (bundle / MANIFEST).write_bytes(FORGED)
        first, second = (root.joinpath(*audit_key(pause, s.name, 0).split("/")).parent
                         for s in h.runbook.audit_sources)
        (first / CHAIN_HEAD).write_bytes(FORGED)  # a head nobody signed
        (second / CHAIN_LOCK).mkdir()  # a lock the store cannot open: its directory moves
    return plant


def plant_in_bucket(s3: Any, bucket: str, h: Harness) -> Callable[[str], None]:
    def plant(pause: str) -> None:
        documents, bundles = predictable_names(h, pause)
        names = [f"{key}.json" for key in documents + bundles] + [f"{key}.json.sig" for key in documents]
        names += [f"{key}.bundle/{MANIFEST}" for key in bundles] + [f"{key}.bundle/manifest.sig" for key in bundles]
        names += [f"{audit_key(pause, s.name, 0).rsplit('/', 1)[0]}/{CHAIN_HEAD}" for s in h.runbook.audit_sources]
        for name in names:
            s3.put_object(Bucket=bucket, Key=PREFIX + name, Body=FORGED)
    return plant


def assert_plants_reported(final: PauseState, expected: set[str], report: dict[str, Any]) -> None:
    recorded = plants_of(final)
    assert expected <= set(recorded), sorted(expected - set(recorded))
    for name in expected:
        plant = recorded[name]
        if name.endswith((".json", MANIFEST)) and plant.kind == "file":
            assert plant.size_bytes == len(FORGED)
    # the report (written last) lists every plant its record names; its own name's plant is on its reference
    listed = {p["name"] for p in report[PLANTS]}
    assert set(recorded) - {p.name for p in final.report.plants or ()} <= listed  # type: ignore[union-attr]


def audit_config(h: Harness, path: Path, evidence: EvidenceSettings) -> Path:
    client = h.client
    path.write_text(dump_settings(Settings(
        temporal=TemporalSettings(address=client.service_client.config.target_host, namespace=client.namespace,
                                  task_queue=h.task_queue),
        encryption=TEST_ENCRYPTION,  # the auditor reads the pause's (encrypted) history
        evidence=evidence,
    )))
    return path


@pytest.mark.slow
async def test_a_pause_whose_evidence_names_were_all_planted_in_its_directory_seals_and_audits_clean(
    make_harness: HarnessFactory, tmp_path: Path
) -> None:
    async with make_harness(agents=20) as h:
        root = h.settings.evidence.directory
        plant_first(h, plant_in_directory(root, h))
        final = await decommissioned_pause(h)
        documents, bundles = predictable_names(h, final.evidence_key)
        expected = {f"{k}.json" for k in documents if not k.endswith("/found")}
        expected |= {f"{k}.bundle/{MANIFEST}" for k in bundles if k.split("/")[-2] == "db-reads"}
        expected |= {f"{audit_key(final.evidence_key, 'fleet-audit', 0).rsplit('/', 1)[0]}/{CHAIN_LOCK}"}
        store: EvidenceStore = h.connectors.evidence_store
        assert final.report is not None and final.report.plants
        report = store.read_json(final.report.key, final.report.sha256)
        assert_plants_reported(final, expected, report)
        assert "Planted at the pause's evidence names" in render_markdown(
            ReportInput(pause_key=final.evidence_key, status=final))
        # what was planted is still there, untouched: evidence of its own
        assert (root.joinpath(*exposure_key(final.evidence_key).split("/")).with_suffix(".json")
                .read_bytes() == FORGED)
        assert final.containment.exposure is not None
        assert final.containment.exposure.report.key != exposure_key(final.evidence_key)

        config = audit_config(h, tmp_path / "config.toml", EvidenceSettings(
            directory=root, signing_key_fingerprint=store.signing_key_sha256))
        audited = await pausegate("evidence", "audit", h.program, config=config, cwd=tmp_path)
        assert audited.code == 0, audited.output
        assert "all evidence is what the pause recorded" in audited.stdout
        assert "planted before the store wrote there" in audited.stdout
        # the final report alone, offline, finds the report under its fresh name and audits clean too
        report_file = root.joinpath(*final.report.key.split("/"))
        offline = await pausegate("evidence", "audit", h.program, "--report",
                                  str(report_file.with_name(report_file.name + ".json")), config=None, cwd=tmp_path)
        assert offline.code == 0, offline.output
        record_result(FAULT, "every name of a pause, in the local evidence directory", injected=len(expected),
                      outcome=f"sealed under fresh names; {len(plants_of(final))} plants in the record and the "
                      "report; evidence audit clean (online and from the report)")


@pytest.mark.slow
async def test_a_pause_whose_evidence_names_were_all_planted_in_the_bucket_seals_and_audits_clean(
    make_harness: HarnessFactory, s3_server: S3Server, tmp_path: Path
) -> None:
    bucket = s3_server.locked_bucket()
    async with make_harness(agents=20, evidence_s3=s3_server.settings(bucket, prefix=PREFIX)) as h:
        plant_first(h, plant_in_bucket(s3_server.client(), bucket, h))
        final = await decommissioned_pause(h)
        documents, bundles = predictable_names(h, final.evidence_key)
        expected = {f"{k}.json" for k in documents if not k.endswith("/found")}
        expected |= {f"{k}.bundle/{MANIFEST}" for k in bundles}
        store: EvidenceStore = h.connectors.evidence_store
        assert final.report is not None and final.report.plants
        report = store.read_json(final.report.key, final.report.sha256, version_id=final.report.version_id)
        assert_plants_reported(final, expected, report)

        config = audit_config(h, tmp_path / "config.toml", EvidenceSettings(
            store="s3", s3=s3_server.settings(bucket, prefix=PREFIX), signing_key_fingerprint=store.signing_key_sha256))
        audited = await pausegate("evidence", "audit", h.program, config=config, cwd=tmp_path)
        assert audited.code == 0, audited.output
        assert "all evidence is what the pause recorded" in audited.stdout
        record_result(FAULT, "every name of a pause, in the S3 bucket (compliance retention)", injected=len(expected),
                      outcome=f"sealed under fresh names; {len(plants_of(final))} plants in the record and the "
                      "report; evidence audit clean")

"""A whole pause with its evidence in an S3 bucket (moto's S3 server): containment seals into the
bucket with each ref naming its object version, the API reads the scope documents from there, and
``pausegate evidence audit`` holds the bucket, and a downloaded copy of it, against the record."""

from __future__ import annotations

from pathlib import Path

import pytest

from pausegate.config import EvidenceSettings, Settings, TemporalSettings, dump_settings
from pausegate.evidence.anchor import recorded_references
from pausegate.models.phase import Phase
from tests.api.support import api_world
from tests.support.encryption import TEST_ENCRYPTION
from tests.support.harness import HarnessFactory
from tests.support.s3_server import ACCESS_KEY, SECRET_KEY, S3Server
from tests.workflows.test_evidence_anchoring import pausegate
from tests.workflows.test_lifecycle import readable_history

PREFIX = "pausegate/"


@pytest.mark.slow
async def test_a_pause_seals_into_the_bucket_and_everything_reads_it_from_there(
    make_harness: HarnessFactory, s3_server: S3Server, tmp_path: Path
) -> None:
    bucket = s3_server.locked_bucket()
    s3 = s3_server.client()
    async with make_harness(agents=50, evidence_s3=s3_server.settings(bucket, prefix=PREFIX)) as h:
        handle, _ = await h.pause()
        status = await h.wait_for(
            lambda s: s.phase is Phase.UNDER_REVIEW and s.containment.exposure is not None,
            timeout=120, what="contained, with the exposure report",
        )
        refs = [ref for _, ref in recorded_references(status)]
        assert refs and all(ref.version_id for ref in refs), refs
        pause = status.evidence_key
        names = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"{PREFIX}{pause}/")["Contents"]}
        for ref in refs:
            assert f"{PREFIX}{ref.key}.json" in names or f"{PREFIX}{ref.key}.bundle/manifest.json" in names, ref.key
        assert not (tmp_path / "evidence").exists()  # nothing on the worker's disk
        history = readable_history(await handle.fetch_history())
        assert status.containment.datasets[0].scope.version_id in history  # the version is the record's
        for secret in (SECRET_KEY, ACCESS_KEY, s3_server.endpoint_url):
            assert secret not in history

        # the API reads the recorded scope from the bucket (there is no evidence anywhere else)
        async with api_world(h, tmp_path / "api") as api:
            scoped = await api.client("ann").get(f"/v1/pauses/{h.program}", params={"scope": "true"})
            assert scoped.status_code == 200, scoped.text
            exposure = scoped.json()["exposure"][0]
            assert exposure["document"]["dataset"] == "telemetry"
            assert exposure["scope"]["version_id"] == status.containment.datasets[0].scope.version_id
            assert scoped.json()["who_saw_what"] is not None

        config = tmp_path / "config.toml"
        config.write_text(dump_settings(Settings(
            temporal=TemporalSettings(address=h.client.service_client.config.target_host,
                                      namespace=h.client.namespace, task_queue=h.task_queue),
            encryption=TEST_ENCRYPTION,  # the auditor reads the pause's (encrypted) history
            # an auditor's configuration: the bucket and the pinned fingerprint, no signing key
            evidence=EvidenceSettings(store="s3", s3=s3_server.settings(bucket, prefix=PREFIX),
                                      signing_key_fingerprint=h.connectors.evidence_store.signing_key_sha256),
        )))
        audited = await pausegate("evidence", "audit", h.program, config=config, cwd=tmp_path)
        assert audited.code == 0, audited.output
        assert f"evidence in s3://{bucket}/{PREFIX}" in audited.stdout
        assert "all evidence is what the pause recorded" in audited.stdout

        # someone with access to the bucket writes a new version of the scope: the audit still reads
        # the recorded version, and says the bucket holds another
        scope = status.containment.datasets[0].scope
        s3.put_object(Bucket=bucket, Key=f"{PREFIX}{scope.key}.json", Body=b'{"dataset":"telemetry","grants":[]}')
        audited = await pausegate("evidence", "audit", h.program, config=config, cwd=tmp_path)
        assert audited.code == 0, audited.output
        assert "2 versions in the bucket" in audited.stdout and "the recorded one was read" in audited.stdout
        verified = await pausegate("evidence", "verify", scope.uri, config=config, cwd=tmp_path)
        assert verified.code == 0, verified.output
        assert "checked against   the" in verified.stdout

        # a downloaded copy is an evidence directory like any other
        copy = tmp_path / "copy"
        downloaded = await pausegate("evidence", "download", h.program, str(copy), config=config, cwd=tmp_path)
        assert downloaded.code == 0, downloaded.output
        audited = await pausegate("evidence", "audit", h.program, "--evidence-dir", str(copy),
                                  config=config, cwd=tmp_path)
        assert audited.code == 0, audited.output
        assert "all evidence is what the pause recorded" in audited.stdout

"""Evidence anchored in the durable record, on the real stack: every substitution an insider with
write access to the evidence can make is caught by ``pausegate evidence audit`` and by
``pausegate evidence verify`` (run as a user runs them, in a subprocess), naming the file; a
document copied from another pause is refused where it is read back (API, activity, workflow).

Two pauses of one program run once for the module (an earlier one, decommissioned with a report,
and a later one still under review); each case tampers with a copy of their evidence.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.access import AccessActivities
from pausegate.config import EvidenceSettings, Settings, TemporalSettings, dump_settings
from pausegate.evidence.anchor import anchors_of
from pausegate.evidence.signing_keys import PUBLIC_KEY_FILENAME
from pausegate.evidence.store import LocalEvidenceStore
from pausegate.models.phase import Phase
from pausegate.models.state import PauseState
from pausegate.models.steps import CheckDatasetInput
from pausegate.models.updates import DecommissionInput, ProposePlanInput
from pausegate.temporal.ids import pause_id
from tests.api.support import api_world
from tests.support.harness import CISO, CTO, SECURITY_LEAD, Harness, HarnessFactory, pause_harness
from tests.workflows.test_lifecycle import NARROWED_PLAN

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


async def pausegate(*args: str, config: Path | None, cwd: Path) -> Run:
    """``pausegate ARGS`` in a subprocess, with ``config`` as ``$PAUSEGATE_CONFIG`` (None: no configuration)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAUSEGATE_")}
    env.update({"COLUMNS": "400", "NO_COLOR": "1", "PYTHONPATH": str(ROOT)})
    if config is not None:
        env["PAUSEGATE_CONFIG"] = str(config)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pausegate.cli.main", *args, env=env, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


async def aiter_of(items: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for item in items:
        yield item


def key_path(root: Path, key: str, suffix: str) -> Path:
    parts = key.split("/")
    return root.joinpath(*parts[:-1], parts[-1] + suffix)


def longest_chain(state: PauseState) -> list[str]:
    """The bundle keys of the pause's longest chain, oldest first (every source seals two segments)."""
    chains: dict[str, list[str]] = {}
    for e in state.containment.evidence:
        chains.setdefault(e.bundle.key.rsplit("/", 1)[0], []).append(e.bundle.key)
    chain = max(chains.values(), key=len)
    assert len(chain) >= 2, chains  # the deletion cases need an older bundle to verify
    return chain


async def closed_run_listed(client: Client, program: str, run_id: str) -> None:
    """Wait until Temporal's visibility lists the closed run (how an earlier pause is found)."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        async for execution in client.list_workflows(f'WorkflowId = "{pause_id(client, program)}"'):
            if execution.run_id == run_id and execution.status == WorkflowExecutionStatus.COMPLETED:
                return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"run {run_id} never listed as completed")
        await asyncio.sleep(0.1)


async def decommissioned_pause(h: Harness) -> PauseState:
    """A pause with two plans proposed (the first superseded), ended by quorum with its report."""
    handle, _ = await h.pause()
    await h.wait_for_state(Phase.UNDER_REVIEW)
    await h.act(ProposePlanInput(actor=SECURITY_LEAD, plan=NARROWED_PLAN))
    await h.act(ProposePlanInput(actor=SECURITY_LEAD, plan=NARROWED_PLAN.model_copy(update={"summary": "revised"})))
    await h.act(DecommissionInput(actor=CISO, role="ciso", reason="consent cannot be obtained"))
    await h.act(DecommissionInput(actor=CTO, role="cto", reason="no business case left"))
    final: PauseState = await handle.result()
    assert final.report is not None and final.plan is not None and final.plan.diff[0].diff is not None
    await closed_run_listed(h.client, h.program, handle.result_run_id or "")
    return final


async def open_pause(h: Harness, earlier: PauseState) -> PauseState:
    """The program paused again, under review with a plan proposed."""
    _, started = await h.pause()
    assert started
    await h.wait_for(lambda s: s.incident_id != earlier.incident_id and s.phase == Phase.UNDER_REVIEW,
                     what="the second pause under review")
    await h.act(ProposePlanInput(actor=SECURITY_LEAD, plan=NARROWED_PLAN))
    later = await h.status()
    assert later.plan is not None and later.plan.diff[0].diff is not None
    return later


@dataclass
class World:
    h: Harness
    base: Path
    earlier: PauseState
    later: PauseState

    @property
    def evidence(self) -> Path:
        return self.h.settings.evidence.directory

    @property
    def fingerprint(self) -> str:
        return self.h.connectors.evidence_store.signing_key_sha256

    @property
    def published_key(self) -> Path:
        """The genuine public key as published out of band (outside any tree a case tampers with)."""
        return self.base / "published.pub.pem"

    def tree(self, name: str) -> Path:
        """A copy of both pauses' evidence for one case to tamper with."""
        root = self.base / name / "evidence"
        shutil.copytree(self.evidence, root, symlinks=True)
        return root

    def config(self, root: Path, *, pin: bool = True) -> Path:
        """The deployment's configuration, its evidence directory being ``root`` (written once: commands
        of one case run concurrently and must never read it half written)."""
        path = root.parent / ("config.toml" if pin else "config-unpinned.toml")
        if path.exists():
            return path
        client = self.h.client
        settings = Settings(
            temporal=TemporalSettings(address=client.service_client.config.target_host, namespace=client.namespace,
                                      task_queue=self.h.task_queue),
            evidence=EvidenceSettings(directory=root, signing_key_fingerprint=self.fingerprint if pin else None),
            encryption=self.h.settings.encryption,
        )
        path.write_text(dump_settings(settings))
        return path

    async def audit(self, root: Path, *args: str, pin: bool = True) -> Run:
        return await pausegate("evidence", "audit", self.h.program, *args, config=self.config(root, pin=pin),
                               cwd=root.parent)

    async def verify(self, root: Path, target: Path) -> Run:
        """``evidence verify`` with the deployment's configuration: the record is consulted."""
        return await pausegate("evidence", "verify", str(target), config=self.config(root), cwd=root.parent)

    async def verify_alone(self, target: Path) -> Run:
        """``evidence verify`` with no configuration, trusting the published key: the bundle against itself."""
        return await pausegate("evidence", "verify", str(target), "--public-key", str(self.published_key),
                               config=None, cwd=self.base)


@pytest_asyncio.fixture(scope="module")
async def world(
    temporal_client: Client, postgres: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    dsn, pglog = postgres
    base = tmp_path_factory.mktemp("anchoring")
    async with pause_harness(temporal_client, dsn, pglog, base, agents=20) as h:
        earlier = await decommissioned_pause(h)
        later = await open_pause(h, earlier)
        w = World(h=h, base=base, earlier=earlier, later=later)
        shutil.copyfile(w.evidence / PUBLIC_KEY_FILENAME, w.published_key)
        yield w


def rel(root: Path, key: str, suffix: str) -> str:
    return key_path(root, key, suffix).relative_to(root).as_posix()


class TestUntouchedEvidence:
    async def test_every_recorded_item_passes_audit_and_verify(self, world: World) -> None:
        w = world
        root = w.tree("untouched")
        newest = longest_chain(w.later)[-1]
        scope = w.later.containment.datasets[0].scope.key
        earlier_report = key_path(root, w.earlier.report.key, ".json")  # type: ignore[union-attr]
        audit, audit_earlier, audit_report, verify_bundle, verify_scope, verify_earlier = await asyncio.gather(
            w.audit(root),
            w.audit(root, "--incident", w.earlier.incident_id),
            pausegate("evidence", "audit", w.h.program, "--report", str(earlier_report), config=None, cwd=root.parent),
            w.verify(root, key_path(root, newest, ".bundle")),
            w.verify(root, key_path(root, scope, ".json")),
            w.verify(root, key_path(root, longest_chain(w.earlier)[0], ".bundle")),
        )
        for run in (audit, audit_earlier, audit_report, verify_bundle, verify_scope, verify_earlier):
            assert run.code == 0, run.output
        # not vacuous: one OK line per item the record names, and the chain heads
        for anchor in anchors_of(w.later):
            suffix = ".bundle" if anchor.kind == "bundle" else ".json"
            assert f"OK     {rel(root, anchor.key, suffix)} " in audit.stdout, anchor
        assert f"against the record of pause {w.later.evidence_key}" in audit.stdout
        assert f"OK     {rel(root, newest.rsplit('/', 1)[0], '')}/.chain-head.json" in audit.stdout
        assert f"against the record of pause {w.earlier.evidence_key}" in audit_earlier.stdout
        assert f"OK     {rel(root, w.earlier.report.key, '.json')} final report" in audit_earlier.stdout  # type: ignore[union-attr]
        # the first plan's diff is not in the record (the second plan replaced it): said, not failed
        assert "NOTE" in audit_earlier.stdout and "diff of a plan the record no longer names" in audit_earlier.stdout
        # offline, the report is the root of trust, and its digest is shown to compare with the record
        assert f"root of trust: this report, sha256 {w.earlier.report.sha256}" in audit_report.stdout  # type: ignore[union-attr]
        assert f"signing key {w.fingerprint}" in audit_report.stdout
        for run, key in ((verify_bundle, w.later.evidence_key), (verify_scope, w.later.evidence_key),
                         (verify_earlier, w.earlier.evidence_key)):
            assert run.stdout.startswith("OK "), run.output
            assert f"checked against   the record of pause {key}" in run.stdout

    async def test_without_configuration_verify_says_it_checked_the_bundle_against_itself_only(
        self, world: World
    ) -> None:
        root = world.tree("alone")
        bundle = key_path(root, longest_chain(world.later)[-1], ".bundle")
        run = await world.verify_alone(bundle)
        assert run.code == 0, run.output
        assert "checked against itself only: no record consulted" in run.stdout


class TestSubstitutions:
    async def test_another_pauses_bundles_copied_over_this_pauses_paths(self, world: World) -> None:
        w = world
        root = w.tree("other-bundles")
        chain = longest_chain(w.later)
        source = chain[0].rsplit("/", 2)[-2]
        theirs = key_path(root, f"{w.earlier.evidence_key}/audit/{source}", "")
        ours = key_path(root, f"{w.later.evidence_key}/audit/{source}", "")
        shutil.rmtree(ours)
        shutil.copytree(theirs, ours)  # every bundle and the chain head, genuine and signed

        older = key_path(root, chain[0], ".bundle")
        audit, verify, alone = await asyncio.gather(w.audit(root), w.verify(root, older), w.verify_alone(older))
        for run in (audit, verify, alone):
            assert run.code == 1, run.output
        for key in chain:
            manifest = f"{rel(root, key, '.bundle')}/manifest.json"
            theirs_key = key.replace(w.later.evidence_key, w.earlier.evidence_key)
            assert f"FAILED {manifest}: manifest names key {theirs_key!r}" in audit.stdout
            assert f"FAILED {manifest}: sha256 " in audit.stdout and "not the recorded file" in audit.stdout
        theirs_older = chain[0].replace(w.later.evidence_key, w.earlier.evidence_key)
        for run in (verify, alone):
            assert f"{older.name}/manifest.json: manifest names key {theirs_older!r}" in run.stdout
        assert f"{older.name}/manifest.json: sha256 " in verify.stdout  # and the record says it is not ours
        assert "checked against itself only" in alone.stdout

    async def test_the_newest_bundle_deleted(self, world: World) -> None:
        w = world
        root = w.tree("newest-deleted")
        chain = longest_chain(w.later)
        newest, older = key_path(root, chain[-1], ".bundle"), key_path(root, chain[0], ".bundle")
        shutil.rmtree(newest)

        audit, verify, alone = await asyncio.gather(w.audit(root), w.verify(root, older), w.verify_alone(older))
        for run in (audit, verify, alone):
            assert run.code == 1, run.output
        assert f"FAILED {rel(root, chain[-1], '.bundle')}: bundle is missing (deleted)" in audit.stdout
        assert f"{newest.name}: bundle is missing (deleted or renamed)" in alone.stdout
        assert f".chain-head.json: chain head names {chain[-1]!r}, which is gone" in alone.stdout
        assert f"{newest.name}: the newest bundle the pause recorded for this chain is missing (deleted)" in (
            verify.stdout
        )

    async def test_the_newest_bundle_and_the_chain_head_deleted(self, world: World) -> None:
        w = world
        root = w.tree("newest-and-head-deleted")
        chain = longest_chain(w.later)
        newest, older = key_path(root, chain[-1], ".bundle"), key_path(root, chain[0], ".bundle")
        shutil.rmtree(newest)
        (older.parent / ".chain-head.json").unlink()

        audit, verify, alone = await asyncio.gather(w.audit(root), w.verify(root, older), w.verify_alone(older))
        for run in (audit, verify, alone):
            assert run.code == 1, run.output
        head = f"{rel(root, chain[0].rsplit('/', 1)[0], '')}/.chain-head.json"
        assert f"FAILED {head}: chain head is missing (deleted): the newest recorded bundle is {chain[-1]!r}" in (
            audit.stdout
        )
        assert f"FAILED {rel(root, chain[-1], '.bundle')}: bundle is missing (deleted)" in audit.stdout
        assert ".chain-head.json: chain head is missing (deleted?)" in alone.stdout
        assert f"{newest.name}: the newest bundle the pause recorded for this chain is missing (deleted)" in (
            verify.stdout
        )

    async def test_the_key_beside_the_evidence_replaced_with_a_forgers(self, world: World) -> None:
        """The forger re-seals the chain with records of their choosing, signs it all with their own
        key and puts that key's public half beside the evidence: self-consistent, and refused."""
        w = world
        root = w.tree("forged-key")
        chain = longest_chain(w.later)
        forger_key = w.base / "forger" / "forger.pem"
        forger_key.parent.mkdir()
        forger_key.write_bytes(Ed25519PrivateKey.generate().private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        forger_key.chmod(0o600)
        forger = LocalEvidenceStore(w.base / "forger" / "evidence", forger_key)
        for key in chain:
            await forger.seal(key, aiter_of([{"at": datetime(2026, 1, 1, tzinfo=UTC).isoformat(), "user": "nobody"}]))
        ours = key_path(root, chain[0].rsplit("/", 1)[0], "")
        shutil.rmtree(ours)
        shutil.copytree(key_path(forger.root, chain[0].rsplit("/", 1)[0], ""), ours)
        beside = root / PUBLIC_KEY_FILENAME
        beside.write_bytes((forger.root / PUBLIC_KEY_FILENAME).read_bytes())

        newest = key_path(root, chain[-1], ".bundle")
        audit, unpinned, verify, unconfigured = await asyncio.gather(
            w.audit(root),
            w.audit(root, pin=False),
            w.verify(root, newest),
            pausegate("evidence", "verify", str(newest), config=None, cwd=w.base),
        )
        for run in (audit, unpinned, verify, unconfigured):
            assert run.code == 1, run.output
        refused = f"{PUBLIC_KEY_FILENAME}: public key beside the evidence has fingerprint {forger.signing_key_sha256}"
        # pinned by configuration, and, with no pin configured, by the manifests the record vouches for
        for run in (audit, unpinned):
            assert f"FAILED {refused}, not the pinned {w.fingerprint}" in run.stdout
            assert f"FAILED {rel(root, chain[-1], '.bundle')}/manifest.json: sha256 " in run.stdout
        assert f"{beside}: public key beside the evidence has fingerprint {forger.signing_key_sha256}" in verify.stdout
        # with nothing to pin it, the key beside the evidence proves nothing
        nowhere = f"public key beside the evidence (fingerprint {forger.signing_key_sha256}) is pinned nowhere"
        assert f"{beside}: {nowhere}" in unconfigured.stdout

    async def test_another_pauses_scope_copied_in(self, world: World) -> None:
        w = world
        root = w.tree("other-scope")
        ours, theirs = w.later.containment.datasets[0].scope.key, w.earlier.containment.datasets[0].scope.key
        for suffix in (".json", ".json.sig"):
            shutil.copyfile(key_path(root, theirs, suffix), key_path(root, ours, suffix))

        document = key_path(root, ours, ".json")
        audit, verify, alone = await asyncio.gather(
            w.audit(root), w.verify(root, document), w.verify_alone(document)
        )
        for run in (audit, verify, alone):
            assert run.code == 1, run.output
        assert f"FAILED {rel(root, ours, '.json')}: sha256 " in audit.stdout
        copied = f"signature names key {theirs!r}, but lies at {ours!r}: copied from elsewhere"
        assert f"FAILED {rel(root, ours, '.json.sig')}: {copied}" in audit.stdout
        assert f"{document.name}: sha256 " in verify.stdout and "not the recorded file" in verify.stdout
        assert f"{document.name}.sig: signature names key {theirs!r}, but lies at {ours!r}" in alone.stdout


class TestReadBack:
    async def test_a_scope_copied_from_another_pause_is_refused_by_the_api_the_activity_and_the_workflow(
        self, make_harness: HarnessFactory, tmp_path: Path
    ) -> None:
        async with make_harness(agents=20) as h:
            first, _ = await h.pause()
            earlier = await h.wait_for_state(Phase.UNDER_REVIEW)
            await h.act(DecommissionInput(actor=CISO, role="ciso", reason="consent cannot be obtained"))
            await h.act(DecommissionInput(actor=CTO, role="cto", reason="no business case left"))
            await first.result()
            await h.pause()
            later = await h.wait_for(lambda s: s.incident_id != earlier.incident_id and s.phase == Phase.UNDER_REVIEW,
                                     what="the second pause under review")
            store = h.connectors.evidence_store
            ours = later.containment.datasets[0].scope
            theirs = earlier.containment.datasets[0].scope
            root = h.settings.evidence.directory
            for suffix in (".json", ".json.sig"):
                key_path(root, ours.key, suffix).unlink()
                shutil.copyfile(key_path(root, theirs.key, suffix), key_path(root, ours.key, suffix))

            async with api_world(h, tmp_path / "api") as api:
                scoped = await api.client("ann").get(f"/v1/pauses/{h.program}", params={"scope": "true"})
            assert scoped.status_code == 503, scoped.text
            assert scoped.json()["error"] == "evidence_unavailable"
            assert f"evidence under key {ours.key!r} is not the one its pause recorded" in scoped.json()["detail"]

            activities = AccessActivities(h.connectors.access, store)
            spec = h.runbook.datasets[0]
            env = ActivityEnvironment()
            with pytest.raises(ApplicationError, match="is not the one its pause recorded") as recorded:
                await env.run(activities.check_dataset,
                              CheckDatasetInput(pause_key=later.evidence_key, dataset=spec, scope_sha256=ours.sha256))
            assert repr(ours.key) in str(recorded.value)
            # without the recorded digest the signature still refuses it: it names the other pause's key
            with pytest.raises(ApplicationError, match="copied from elsewhere") as signed:
                await env.run(activities.check_dataset, CheckDatasetInput(pause_key=later.evidence_key, dataset=spec))
            assert repr(theirs.key) in str(signed.value)

            # the workflow's own read, through a plan's diff against the scope, is refused as well
            await h.act(ProposePlanInput(actor=SECURITY_LEAD, plan=NARROWED_PLAN))
            status = await h.status()
            assert status.plan is not None and status.plan.diff == []
            failed = [e for e in status.timeline if e.action == "plan.diff.failed"]
            assert failed and ours.key in failed[-1].detail, status.timeline[-3:]

"""Rejecting from the terminal where the runbook requires signed approvals: ``pausegate reject --ssh-key``
signs a rejection statement (decision reject, the reason as its comment) with the rejecter's enrolled key;
a token alone is refused and the plan stands; the signed rejection voids the plan, and the pause's
timeline names the key that signed it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
import yaml

from tests.api.support import NARROWED_PLAN, ApiWorld, api_world
from tests.approvals.conftest import signed_runbook
from tests.cli.conftest import CliRunner
from tests.support.harness import Harness
from tests.support.signing import SshKey


@pytest_asyncio.fixture
async def api(harness: Harness, tmp_path: Path) -> AsyncIterator[ApiWorld]:
    """The API in front of a pause whose runbook requires signed approvals."""
    harness.runbook = signed_runbook(harness.program)
    async with api_world(harness, tmp_path / "api") as world:
        yield world


async def test_a_leader_rejects_the_plan_with_a_signed_statement_from_the_cli(
    api: ApiWorld, cli: CliRunner, tmp_path: Path
) -> None:
    key = SshKey.make(tmp_path / "ssh", "cleo")
    enrolled = await cli("keys", "enroll", "--ssh-key", str(key.path), "--json", who="cleo")
    assert enrolled.code == 0, enrolled.stderr
    confirmed = await cli("keys", "confirm", key.key_id, "--json", who="ada")
    assert confirmed.code == 0, confirmed.stderr

    p = api.program
    paused = await cli("pause", p, "--reason", "telemetry readable company-wide", "--no-wait")
    assert paused.code == 0, paused.stderr
    await api.wait_for_state("UNDER_REVIEW", timeout=90)
    await api.complete_review()
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(yaml.safe_dump(NARROWED_PLAN))
    proposed = await cli("plan", p, str(plan_file), "--json")
    assert proposed.code == 0, proposed.stderr
    await api.wait_for(lambda v: (v.get("signoff") or {}).get("nonce") is not None, what="a round's nonce")

    token_only = await cli("reject", p, "--reason", "still too wide", who="cleo")
    assert token_only.code == 1 and "signature_required" in token_only.stderr
    assert (await api.view())["plan"] is not None  # refused: the plan stands

    rejected = await cli("reject", p, "--reason", "still too wide", "--ssh-key", str(key.path), "--json", who="cleo")
    assert rejected.code == 0, rejected.stderr
    view = await api.wait_for(lambda v: v.get("plan") is None, what="the plan voided")
    signed = [e for e in view["timeline"] if e["action"] == "plan.rejection.signed"]
    assert [e["actor"] for e in signed] == ["local:cleo"] and key.key_id[:12] in signed[0]["detail"]
    assert json.loads(rejected.stdout)["message"] == "plan rejected"

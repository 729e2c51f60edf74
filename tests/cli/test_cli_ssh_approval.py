"""Leaders who live in a terminal: they enroll an SSH key made by ssh-keygen, an admin confirms it, and
``pausegate approve --ssh-key`` signs the approval statement; under a runbook that requires signatures a
token alone is refused and the two signed approvals resume the program. ``pausegate reject --ssh-key``
signs a rejection (decision reject, the reason as its comment) the same way: a token alone is refused and
the plan stands; the signed rejection voids the plan, and the timeline names the key that signed it."""

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


async def test_leaders_enroll_ssh_keys_and_approve_with_them_from_the_cli(
    api: ApiWorld, cli: CliRunner, tmp_path: Path
) -> None:
    keys = {who: SshKey.make(tmp_path / "ssh", who) for who in ("cleo", "pat")}
    for who, key in keys.items():
        enrolled = await cli("keys", "enroll", "--ssh-key", str(key.path), "--json", who=who)
        assert enrolled.code == 0, enrolled.stderr
        assert json.loads(enrolled.stdout)["key_id"] == key.key_id
        own = await cli("keys", "confirm", key.key_id, who=who)
        assert own.code != 0  # a holder never confirms their own key (and is no admin here)
        confirmed = await cli("keys", "confirm", key.key_id, "--json", who="ada")
        assert confirmed.code == 0, confirmed.stderr
        assert json.loads(confirmed.stdout)["confirmed_by"] == ["local:ada"]

    p = await paused_and_proposed(api, cli, tmp_path)
    view = await api.wait_for(lambda v: (v.get("signoff") or {}).get("nonce") is not None, what="a round's nonce")
    assert {k["holder"] for k in view["signoff"]["ring"]["keys"]} == {"local:cleo", "local:pat"}

    token_only = await cli("approve", p, who="cleo")
    assert token_only.code == 1 and "signature_required" in token_only.stderr

    for who in ("cleo", "pat"):
        approved = await cli("approve", p, "--ssh-key", str(keys[who].path), "--comment", "narrowed enough", who=who)
        assert approved.code == 0, approved.stderr
        assert "signed with key" in approved.stdout

    final = await api.wait_for_state("RESUMED", timeout=90)
    signed = [(a["actor_id"], a["signature"]["key"]["kind"], a["signature"]["key"]["key_id"])
              for a in final["approvals"]]
    assert signed == [("local:cleo", "ssh", keys["cleo"].key_id), ("local:pat", "ssh", keys["pat"].key_id)]

    # A removed key is listed no more (and a pause that starts now would not pin it).
    removed = await cli("keys", "remove", keys["pat"].key_id, who="pat")
    assert removed.code == 0, removed.stderr
    listed = await cli("keys", "list", "--json", who="ada")
    assert [k["holder"] for k in json.loads(listed.stdout)["keys"]] == ["local:cleo"]


async def test_a_leader_rejects_the_plan_with_a_signed_statement_from_the_cli(
    api: ApiWorld, cli: CliRunner, tmp_path: Path
) -> None:
    key = SshKey.make(tmp_path / "ssh", "cleo")
    enrolled = await cli("keys", "enroll", "--ssh-key", str(key.path), "--json", who="cleo")
    assert enrolled.code == 0, enrolled.stderr
    confirmed = await cli("keys", "confirm", key.key_id, "--json", who="ada")
    assert confirmed.code == 0, confirmed.stderr

    p = await paused_and_proposed(api, cli, tmp_path)
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


async def paused_and_proposed(api: ApiWorld, cli: CliRunner, tmp_path: Path) -> str:
    """The program paused, reviewed and a plan proposed, all through the CLI; the program's id."""
    p = api.program
    paused = await cli("pause", p, "--reason", "telemetry readable company-wide", "--no-wait")
    assert paused.code == 0, paused.stderr
    await api.wait_for_state("UNDER_REVIEW", timeout=90)
    await api.complete_review()
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(yaml.safe_dump(NARROWED_PLAN))
    proposed = await cli("plan", p, str(plan_file), "--json")
    assert proposed.code == 0, proposed.stderr
    return p

"""Markup and terminal control sequences that people put into a pause print as literal text, through the real API."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.api.support import NARROWED_PLAN, ApiWorld, evidence_for, oidc
from tests.cli.conftest import CliRunner, Run
from tests.cli.hostile import CLEAR, OSC8_LINK, hostile, shown, without_styles
from tests.support.fault_report import record_result

WIDE = {"COLUMNS": "1000"}  # no table cell wraps, so each value can be found whole
TERMINAL = {**WIDE, "NO_COLOR": "", "FORCE_COLOR": "1", "TERM": "xterm-256color", "COLORTERM": "truecolor"}


def assert_literal(run: Run, *tags: str) -> None:
    assert run.code == 0, run.stderr
    assert "\x1b" not in run.stdout and "\x1b" not in run.stderr
    for tag in tags:
        assert shown(tag) in run.stdout, tag


async def test_api_text_is_printed_as_text_never_as_markup_or_control(
    api: ApiWorld, cli: CliRunner, tmp_path: Path
) -> None:
    p = api.program
    # OIDC subjects are whatever the identity provider says they are.
    commander = api.issuer.token(hostile("commander"), ["incident-commander"])
    reviewer = api.issuer.token(hostile("reviewer"), ["security-analyst"])
    # A role in the program, not the item's: refused into the timeline (a caller with no role at all is
    # refused into the API's refusal log instead, never reaching the pause).
    outsider = api.issuer.token(hostile("outsider"), ["data-engineer"])
    admin = api.issuer.token("ada", ["admin"])

    paused = await cli(
        "pause", p, "--reason", hostile("reason"), "--interval", "0.1", who=None, env={"PAUSEGATE_TOKEN": commander}
    )
    assert_literal(paused, "commander")

    # An evidence name and a note (the name lands in the timeline's detail, within its first 100 characters).
    completed = await api.client(token=reviewer).post(
        f"/v1/pauses/{p}/checklist/access-review",
        json={
            "evidence": [{"name": hostile("ev"), "uri": "https://docs.example.com/x"},
                         evidence_for("access-review", "access-report")],
            "note": hostile("note"),
        },
    )
    assert completed.status_code == 200, completed.text

    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(yaml.safe_dump({**NARROWED_PLAN, "summary": hostile("summary")}))
    for step in range(2):  # proposed, rejected with a reason, proposed again (to be shown)
        proposed = await cli("plan", p, str(plan_file), who=None, env={"PAUSEGATE_TOKEN": commander})
        assert proposed.code == 0, proposed.stderr
        if step == 0:
            rejected = await cli("reject", p, "--reason", hostile("rejection"), who="cleo")
            assert rejected.code == 0, rejected.stderr

    # A refusal in the timeline, under the refused person's name.
    refused = await cli(
        "complete", p, "access-review", "-e", "access-report=https://docs.example.com/y",
        who=None, env={"PAUSEGATE_TOKEN": outsider},
    )
    assert refused.code == 1 and "wrong_role" in refused.stderr
    assert "\x1b" not in refused.stderr

    status = await cli("status", p, who="tom", env=WIDE)
    assert_literal(status, "reason", "commander", "reviewer", "summary", "rejection", "ev", "outsider")
    assert f"by {oidc('')}{shown('commander')}: agents all, 4 grants. {shown('summary')}" in status.stdout

    # On a colour terminal: styles reach it (so a link would), yet no link and no clear-screen does.
    coloured = await cli("status", p, who="tom", env=TERMINAL)
    assert coloured.code == 0, coloured.stderr
    assert "\x1b[" in coloured.stdout
    assert OSC8_LINK not in coloured.stdout and CLEAR not in coloured.stdout
    text = without_styles(coloured.stdout)
    assert "\x1b" not in text
    for tag in ("reason", "commander", "reviewer", "summary", "rejection", "ev", "outsider"):
        assert shown(tag) in text, tag

    # --json is the API's JSON: the text exactly as written, control characters as JSON escapes.
    as_json = await cli("status", p, "--json", who="tom")
    assert as_json.code == 0, as_json.stderr
    assert "\x1b" not in as_json.stdout
    document = json.loads(as_json.stdout)
    assert document == (await api.client("tom").get(f"/v1/pauses/{p}")).json()
    assert document["reason"] == hostile("reason") and document["commander"] == oidc(hostile("commander"))
    assert document["plan"]["plan"]["summary"] == hostile("summary")
    item = next(i for i in document["checklist"] if i["id"] == "access-review")
    assert item["note"] == hostile("note") and item["evidence"][0]["name"] == hostile("ev")

    assert_literal(await cli("checklist", p, who="ann", env=WIDE), "reviewer")
    assert_literal(await cli("pauses", who="ann", env=WIDE), "commander")

    not_admin = await cli("refusals", who=None, env={"PAUSEGATE_TOKEN": outsider})
    assert not_admin.code == 1
    refusals = await cli("refusals", who=None, env={**WIDE, "PAUSEGATE_TOKEN": admin})
    assert_literal(refusals, "outsider")
    record_result("markup and control sequences in API text", "subjects, notes, plans, reasons, timeline",
                  injected=6, outcome="printed literally by every command; no crash, no link, no terminal control")

"""The scope gate: what a pause reveals about access (who had it, keeps, loses or gains it, residual paths,
scope documents, who saw what, the report) reaches the program's review roles only, through every GET the
API has, enumerated from the app itself so a route added later is checked too."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest_asyncio
from fastapi.routing import APIRoute
from psycopg import sql

from tests.api.support import NARROWED_PLAN, ApiWorld, api_world
from tests.support.fault_report import record_result
from tests.support.harness import Harness

APPROVAL_COMMENT = "approved after reading the access report line by line"
READER = "employee_0001"  # reads the data before the pause: the who-saw-what report names this role

# Keys whose value names access; for a caller without a review role they must be empty wherever they appear.
ACCESS_KEYS = {"loses_roles", "keeps_roles", "gains_roles", "residual", "who_saw_what", "report", "document",
               "exposure"}


@pytest_asyncio.fixture
async def resumed(harness: Harness, tmp_path: Path) -> AsyncIterator[tuple[ApiWorld, str]]:
    """A pause of the example with everything that names access filled in: a residual path (a table
    owned by another role), a read in the exposure window, a plan with its diff, approvals with comments,
    and the final report. Yields the world and the residual owner's role name."""
    h = harness
    owner = f"owner_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(h.database_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(owner)))
        conn.execute(sql.SQL("ALTER TABLE telemetry.mouse_events OWNER TO {}").format(sql.Identifier(owner)))
    with psycopg.connect(h.dsn_as(READER), autocommit=True) as conn:
        conn.execute("SELECT count(*) FROM telemetry.keystrokes")  # someone saw the data

    async with api_world(h, tmp_path / "api") as api:
        p = api.program
        r = await api.client("carol").post("/v1/pauses", json={"program": p, "reason": "leak"})
        assert r.status_code == 201, r.text
        await api.wait_for(lambda v: any(d["residual"] for d in v["containment"]["datasets"])
                           and v["containment"]["exposure"] is not None, what="residual recorded")
        r = await api.client("carol").post(f"/v1/pauses/{p}/residual-waivers",
                                           json={"dataset": "telemetry", "reason": "platform's owner role"})
        assert r.status_code == 200, r.text
        await api.wait_for_state("UNDER_REVIEW")
        await api.complete_review()
        proposed = await api.client("sam").post(f"/v1/pauses/{p}/plan", json=NARROWED_PLAN)
        assert proposed.status_code == 200, proposed.text
        for who in ("cleo", "pat"):
            r = await api.client(who).post(f"/v1/pauses/{p}/approvals",
                                           json={"digest": proposed.json()["digest"], "comment": APPROVAL_COMMENT})
            assert r.status_code == 200, r.text
        await api.wait_for(lambda v: v["state"] == "RESUMED" and v["report"] is not None, timeout=90,
                           what="resumed with its report")
        yield api, owner


def requests_for(api: ApiWorld) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every GET the app serves, with every value of each query parameter that changes what it shows."""
    document = api.app.openapi()
    documented = set()
    for path, operations in document["paths"].items():
        if "get" not in operations:
            continue
        documented.add(path)
        choices: list[list[tuple[str, Any]]] = []
        for parameter in operations["get"].get("parameters", []):
            name, schema = parameter["name"], parameter.get("schema", {})
            if parameter["in"] == "path":
                assert name == "program", f"{path}: teach this test the path parameter {name!r}"
                continue
            if parameter["in"] != "query":
                continue
            if schema.get("type") == "boolean":
                choices.append([(name, False), (name, True)])
            elif "enum" in schema:
                choices.append([(name, v) for v in schema["enum"]])
            elif name == "program":
                choices.append([(name, None), (name, api.program)])
        for combination in itertools.product(*choices):
            params = {k: v for k, v in combination if v is not None}
            yield path.replace("{program}", api.program), params
    # Routes outside the document (the docs pages, the document itself) are GETs too.
    for route in api.app.routes:
        path = getattr(route, "path", "")
        if "GET" in (getattr(route, "methods", None) or set()) and path not in documented:
            assert not isinstance(route, APIRoute) or not route.include_in_schema or "{" not in path, path
            yield path, {}


def sensitive_values(view: dict[str, Any], checklist: list[dict[str, Any]], owner: str) -> set[str]:
    """Strings that name access, taken from what a reviewer is shown."""
    found = {owner, APPROVAL_COMMENT, READER}
    containment = view["containment"]
    for d in containment["datasets"]:
        found.update(d["residual"])
    found.update((containment["exposure"]["report"]["uri"], containment["exposure"]["report"]["sha256"]))
    found.update((view["report"]["uri"], view["report"]["sha256"]))
    for d in view["plan"]["diff"]:
        found.update(d["loses_roles"] + d["keeps_roles"] + d["gains_roles"])
        found.update((d["diff"]["uri"], d["diff"]["sha256"]))
    found.update(g["role"] for g in view["plan"]["plan"]["grants"])
    for e in view["exposure"]:
        found.update(g["grantee"] for g in e["document"]["grants"])
    found.update(e["uri"] for item in checklist for e in item["evidence"])
    # Names shorter than this would match unrelated text (``public`` in a word); none of the above is.
    return {v for v in found if len(v) >= 8}


def empty_access_fields(value: Any, where: str = "") -> Iterator[str]:
    """Paths of fields that name access whose value is not empty: ACCESS_KEYS anywhere, a plan's grants,
    a checklist item's evidence and note."""
    if isinstance(value, dict):
        if "agents" in value and value.get("grants"):  # a resume plan: whom it gives access
            yield f"{where}.grants"
        if "evidence_required" in value and (value.get("evidence") or value.get("note")):  # a checklist item
            yield f"{where}.evidence"
        for key, inner in value.items():
            here = f"{where}.{key}"
            if key in ACCESS_KEYS and inner not in (None, [], {}, ""):
                yield here
            yield from empty_access_fields(inner, here)
    elif isinstance(value, list):
        for n, inner in enumerate(value):
            yield from empty_access_fields(inner, f"{where}[{n}]")


class TestScopeGate:
    async def test_every_get_shows_access_to_review_roles_only(self, resumed: tuple[ApiWorld, str]) -> None:
        api, owner = resumed
        p = api.program
        outsider = api.client(token=api.issuer.token("olga", ["employees"]))
        reviewer = api.client("tom")  # cto: an approver role of the program
        full = (await reviewer.get(f"/v1/pauses/{p}", params={"scope": "true"})).json()
        checklist = (await reviewer.get(f"/v1/pauses/{p}/checklist")).json()
        secrets = sensitive_values(full, checklist, owner)
        assert owner in secrets and any("mouse_events" in s for s in secrets) and len(secrets) >= 10, secrets

        requests = list(requests_for(api))
        paths = {path for path, _ in requests}
        assert {f"/v1/pauses/{p}", f"/v1/pauses/{p}/checklist", f"/v1/pauses/{p}/report", "/v1/pauses"} <= paths

        seen_by_reviewer: set[str] = set()
        for path, params in requests:
            shown = await outsider.get(path, params=params)
            text = shown.text
            assert shown.status_code in (200, 403), (path, params, shown.status_code, text[:300])
            leaked = sorted(s for s in secrets if s in text)
            assert not leaked, (path, params, leaked)
            if shown.status_code == 200 and shown.headers.get("content-type", "").startswith("application/json"):
                body = shown.json()
                if path.startswith("/v1/"):
                    assert list(empty_access_fields(body)) == [], (path, params)
                if isinstance(body, dict) and "redacted" in body:
                    assert body["redacted"] is True, path
            as_reviewer = await reviewer.get(path, params=params)
            seen_by_reviewer.update(s for s in secrets if s in as_reviewer.text)

        # Every value the outsider was checked for is one the API does show someone: each check could fail.
        assert seen_by_reviewer == secrets, sorted(secrets - seen_by_reviewer)
        # The refusals of the outsider (scope, report) went to the API's log, not to the pause.
        olga = (await outsider.get("/v1/whoami")).json()["id"]
        logged = {e.action for e in api.app.state.api.refusals.entries() if e.actor == olga}
        assert {"refused.read_scope", "refused.read_report"} <= logged
        assert not any(e["actor"] == olga for e in full["timeline"])
        record_result("caller without a review role reads access", "every GET route, every query value",
                      injected=len(seen_by_reviewer), outcome="every field that reveals access empty or refused; "
                      "each value checked for is shown to a reviewer")

    async def test_the_redacted_view_keeps_what_everyone_may_know(self, resumed: tuple[ApiWorld, str]) -> None:
        api, _ = resumed
        outsider = api.client(token=api.issuer.token("olga", ["employees"]))
        view = (await outsider.get(f"/v1/pauses/{api.program}")).json()
        full = await api.view("tom")
        # State, counts, who did what and when stay; the approval digest is the reviewers' digest.
        assert view["state"] == "RESUMED" and view["progress"] == {**full["progress"], "errors": []}
        assert view["approval_digest"] == full["approval_digest"]
        assert [(e["actor"], e["action"], e["at"]) for e in view["timeline"]] == [
            (e["actor"], e["action"], e["at"]) for e in full["timeline"]
        ]
        assert [i["completed_by"] for i in view["checklist"]] == [i["completed_by"] for i in full["checklist"]]
        assert view["plan"]["diff"][0]["loses"] == full["plan"]["diff"][0]["loses"] > 0
        # The list of pauses names no program the outsider has no role in.
        assert (await outsider.get("/v1/pauses")).json() == []


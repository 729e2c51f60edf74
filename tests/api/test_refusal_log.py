"""The API's refusal log: refusals no pause can hold are kept, chained, and readable by admins only."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pausegate.api.refusal_log import RefusalLog
from pausegate.models.people import Actor
from pausegate.records.chain import GENESIS
from tests.api.support import api_world, local
from tests.support.harness import Harness

ADMIN = Actor(id="ada", roles=["admin"])


KEY = Ed25519PrivateKey.generate()


def test_a_line_stands_for_its_refusals_and_the_head_sits_beside_the_log(tmp_path: Path) -> None:
    """The chain itself (tampering, the signed head, breaks, concurrent appends) is the shared rule's,
    tested against every medium in ``tests/records/test_chain_tamper.py``."""
    log = RefusalLog.file(tmp_path / "api-refusals.jsonl", KEY)
    entry = log.append(actor="ann", roles=["b", "a"], program=None, action="refused.trigger", reason="x" * 3000,
                       count=7)
    assert (entry.roles, len(entry.reason), entry.count, entry.prev) == (["a", "b"], 2000, 7, GENESIS)
    assert (tmp_path / "api-refusals.head.json").exists()
    assert list(log.entries()) == [entry] and log.problems() == []
    assert stat.S_IMODE((tmp_path / "api-refusals.jsonl").stat().st_mode) == 0o600


async def test_a_refused_trigger_with_no_pause_is_kept_and_only_admins_read_it(
    harness: Harness, tmp_path: Path
) -> None:
    async with api_world(harness, tmp_path / "api", extra_people=[ADMIN]) as api:
        r = await api.client("ann").post("/v1/pauses", json={"program": api.program, "reason": "me"})
        assert r.status_code == 403 and r.json()["error"] == "wrong_role"
        assert (await api.client("carol").get(f"/v1/pauses/{api.program}")).status_code == 404  # nothing started

        denied = await api.client("ann").get("/v1/refusals")
        assert denied.status_code == 403 and denied.json()["error"] == "wrong_role"

        r = await api.client("ada").get("/v1/refusals", params={"program": api.program})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["chain_problems"] == []
        assert [(e["actor"], e["program"], e["action"]) for e in body["entries"]] == [
            (local("ann"), api.program, "refused.trigger")
        ]
        assert body["entries"][0]["reason"].startswith("wrong_role: starting a pause is for roles")

        everything = (await api.client("ada").get("/v1/refusals")).json()["entries"]
        assert [(e["actor"], e["action"]) for e in everything] == [
            (local("ann"), "refused.trigger"),
            (local("ann"), "refused.read_refusals"),
        ]
        lines = api.settings.api.refusal_log.read_bytes().splitlines()
        assert len(lines) == 2 and all(json.loads(line)["actor"] == local("ann") for line in lines)

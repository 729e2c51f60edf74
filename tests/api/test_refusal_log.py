"""The API's refusal log: refusals no pause can hold are kept, chained, and readable by admins only."""

from __future__ import annotations

import json
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pausegate.api.refusal_log import GENESIS, RefusalLog
from pausegate.models.pause import Actor
from tests.api.support import api_world, local
from tests.support.harness import Harness

ADMIN = Actor(id="ada", roles=["admin"])


KEY = Ed25519PrivateKey.generate()


def filled(path: Path, n: int) -> RefusalLog:
    log = RefusalLog(path, KEY)
    for i in range(n):
        log.append(actor=f"user{i}", roles=["analyst"], program="employee-telemetry", action="refused.trigger",
                   reason=f"wrong_role: attempt {i}")
    return log


class TestChain:
    def test_entries_chain_and_the_file_is_owner_only(self, tmp_path: Path) -> None:
        log = filled(tmp_path / "refusals.jsonl", 5)
        entries = list(log.entries())
        assert [e.actor for e in entries] == [f"user{i}" for i in range(5)]
        assert entries[0].prev == GENESIS and len({e.prev for e in entries}) == 5
        assert log.problems() == []
        assert stat.S_IMODE(log.path.stat().st_mode) == 0o600

    @pytest.mark.parametrize(
        "tamper,line",
        [
            (lambda lines: [*lines[:2], *lines[3:]], 3),  # a line removed
            (lambda lines: [lines[0], lines[2], lines[1], *lines[3:]], 2),  # reordered
            (lambda lines: [lines[0], lines[1].replace(b"user1", b"user9"), *lines[2:]], 3),  # edited
        ],
    )
    def test_tampering_breaks_the_chain_at_the_next_line(
        self, tmp_path: Path, tamper: Callable[[list[bytes]], list[bytes]], line: int
    ) -> None:
        log = filled(tmp_path / "refusals.jsonl", 5)
        lines = log.path.read_bytes().splitlines(keepends=True)
        log.path.write_bytes(b"".join(tamper(lines)))
        problems = log.problems()
        assert problems and problems[0].startswith(f"{log.path}:{line}: does not follow")

    def test_the_signed_head_vouches_for_the_end(self, tmp_path: Path) -> None:
        log = filled(tmp_path / "refusals.jsonl", 3)
        lines = log.path.read_bytes().splitlines(keepends=True)
        log.path.write_bytes(b"".join(lines[:2]))  # the newest refusal cut off
        assert log.problems() == [f"{log.path}: ends at line 2, the signed head says line 3 "
                                  "(lines cut or appended outside the API, or the last line edited)"]
        log.path.write_bytes(b"".join([*lines[:2], lines[2].replace(b"user2", b"user7")]))  # the newest edited
        assert len(log.problems()) == 1 and "ends at line 3" in log.problems()[0]
        log.path.write_bytes(b"".join(lines))
        assert log.problems() == []

    def test_a_lost_or_forged_head_is_reported(self, tmp_path: Path) -> None:
        log = filled(tmp_path / "refusals.jsonl", 2)
        head = log.head_path.read_bytes()
        log.head_path.unlink()
        assert log.problems() == [f"{log.head_path}: missing or unreadable; the log's end is not vouched for"]
        forged = json.loads(head)
        forged["lines"] = 1
        log.head_path.write_bytes(json.dumps(forged).encode())
        assert log.problems() == [f"{log.head_path}: signature does not verify with the deployment's key"]
        other = RefusalLog(log.path, Ed25519PrivateKey.generate())
        log.head_path.write_bytes(head)
        assert other.problems() == [f"{log.head_path}: signature does not verify with the deployment's key"]

    def test_an_outside_change_stays_on_record_after_the_next_append(self, tmp_path: Path) -> None:
        log = filled(tmp_path / "refusals.jsonl", 3)
        lines = log.path.read_bytes().splitlines(keepends=True)
        log.path.write_bytes(b"".join(lines[:2]))  # cut outside the API...
        log.append(actor="eve", roles=[], program=None, action="refused.trigger", reason="later")  # ...then appended
        assert log.problems() == [
            f"{log.path}: when line 3 was appended, the log did not end where its signed head said "
            "(changed outside the API)"
        ]

    def test_concurrent_appends_keep_one_chain(self, tmp_path: Path) -> None:
        path = tmp_path / "refusals.jsonl"

        def append_some(who: int) -> None:
            log = RefusalLog(path, KEY)
            for i in range(25):
                log.append(actor=f"t{who}", roles=[], program=None, action="refused.read_refusals", reason=str(i))

        threads = [threading.Thread(target=append_some, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        log = RefusalLog(path, KEY)
        assert len(list(log.entries())) == 100
        assert log.problems() == []


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

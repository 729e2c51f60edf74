"""Insiders with the API's database role (or the database's owner) against the state the replicas share,
on a real PostgreSQL and, for the kill switch, a real Temporal: nothing they write there is obeyed.

- a commander's rate bucket set to minus a quadrillion tokens: the switch is still pulled at once;
- buckets and update slots outside their bounds: reset or counted free, and logged;
- a user's older signed row written back (before a demotion, a removal, a new token), even with the
  log's older head put back: it proves nobody;
- the refusal log cut back to a saved head with the append-only trigger disabled: its check says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg.types.json import Jsonb

from pausegate.api.backends import open_backends
from pausegate.api.errors import Throttled
from pausegate.api.limits import ActionLimits
from pausegate.api.logs import main as logs_main
from pausegate.api.rate_limits.postgres import PgRateLimiter
from pausegate.api.refusal_log import LOG_NAME, RefusalLog
from pausegate.api.update_slots import SharedSlots
from pausegate.apidb.database import ApiDatabase
from pausegate.auth.base import AuthenticationError
from pausegate.auth.users.postgres import PgTokens, PgUserDirectory
from pausegate.config import ApiSettings, StateDatabaseSettings, dump_settings
from pausegate.evidence.open_store import open_evidence_store
from pausegate.records.anchors import HeadAnchors
from pausegate.records.postgres import PgMedium
from tests.api.replicas_support import replicas
from tests.api.support import local
from tests.support.fault_report import record_result
from tests.support.harness import Harness

KEY = Ed25519PrivateKey.generate()


@pytest.fixture
def db(state_db: tuple[StateDatabaseSettings, str]) -> Iterator[ApiDatabase]:
    database = ApiDatabase(state_db[0])
    yield database
    database.close_sync()


def as_api_role(settings: StateDatabaseSettings, *statements: tuple[str, tuple[object, ...]]) -> None:
    """What anyone holding the API's database role (its DSN is in every replica's configuration) can do."""
    with psycopg.connect(settings.dsn.get_secret_value(), autocommit=True) as conn:
        for statement, params in statements:
            conn.execute(statement.encode(), params)


def as_owner(settings: StateDatabaseSettings, *statements: str) -> None:
    """What the owner of the API's tables can do: take back the privileges the migrations revoked, and
    disable the append-only trigger."""
    assert settings.owner_dsn is not None
    with psycopg.connect(settings.owner_dsn.get_secret_value(), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement.encode())


async def call(url: str, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, timeout=60.0) as http:
        return await http.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)


class TestTheKillSwitch:
    async def test_a_commander_pulls_it_whatever_their_rate_bucket_says_and_others_stay_limited(
        self, harness: Harness, tmp_path: Path, state_db: tuple[StateDatabaseSettings, str]
    ) -> None:
        limits = ActionLimits(rate_per_second=0.01, burst=2)
        async with replicas(harness, tmp_path, state_db[0], count=1, limits=limits) as (world,):
            as_api_role(state_db[0], (
                "INSERT INTO api_rate_buckets (actor, tokens, granted, at) VALUES (%s, -1e15, false, now())",
                (local("carol"),),
            ))
            pulls = [await call(world.url, "POST", "/v1/pauses", world.tokens["carol"],
                                json={"program": world.program, "reason": "leak"}) for _ in range(4)]
            assert [r.status_code for r in pulls] == [201, 200, 200, 200], [r.text for r in pulls]
            assert all("Retry-After" not in r.headers for r in pulls)
            # An analyst may not pull it: refused, and rate-limited like any other action.
            tries = [await call(world.url, "POST", "/v1/pauses", world.tokens["ann"],
                                json={"program": world.program, "reason": "me too"}) for _ in range(4)]
            assert [r.status_code for r in tries] == [403, 403, 429, 429], [r.text for r in tries]
            assert all(1 <= int(r.headers["Retry-After"]) <= 100 for r in tries[2:])
        record_result("a commander's rate bucket set to -1e15 by the API's database role", "pull the kill switch",
                      injected=1, outcome="201 then 200 (the open pause) at once, never 429; an analyst's "
                      "tries still 403 then 429 with a bounded Retry-After")


class TestRateBuckets:
    @pytest.mark.parametrize(("tokens", "at"), [
        ("-1e15", "now()"), ("'NaN'", "now()"), ("1e300", "now()"), ("0", "'infinity'"), ("0", "'-infinity'"),
        ("0", "now() + interval '10 years'"),
    ])
    async def test_a_bucket_outside_its_bounds_is_reset_and_logged(
        self, db: ApiDatabase, state_db: tuple[StateDatabaseSettings, str], tokens: str, at: str
    ) -> None:
        as_api_role(state_db[0], (
            f"INSERT INTO api_rate_buckets (actor, tokens, granted, at) VALUES ('mallory', {tokens}, false, {at})",
            (),
        ))
        limiter = PgRateLimiter(db, rate_per_second=0.01, burst=3)
        with structlog.testing.capture_logs() as logs:
            for _ in range(3):
                await limiter.acquire("mallory")  # a full bucket's worth, as if the row were not there
        assert [e["event"] for e in logs if e["log_level"] == "error"] == ["rate_bucket_out_of_bounds"]
        with pytest.raises(Throttled) as over:
            await limiter.acquire("mallory")
        assert over.value.headers is not None and 1 <= int(over.value.headers["Retry-After"]) <= 100
        await db.close()
        record_result("a rate bucket outside its bounds", f"tokens {tokens}, last use {at}", injected=1,
                      outcome="reset to a full bucket and logged; the next refusal's Retry-After bounded")


class TestUpdateSlots:
    async def test_slot_rows_expiring_at_infinity_hold_no_slot(
        self, db: ApiDatabase, state_db: tuple[StateDatabaseSettings, str]
    ) -> None:
        as_api_role(state_db[0], *[(
            "INSERT INTO api_update_slots (pause, slot, lease, replica, actor, expires_at) "
            "VALUES ('the-pause', %s, gen_random_uuid(), 'nobody', 'mallory', 'infinity')", (n,),
        ) for n in range(8)])
        slots = SharedSlots(db, 8, lease_seconds=5.0)
        assert await slots.live("the-pause") == 0
        loop = asyncio.get_running_loop()
        with structlog.testing.capture_logs() as logs:
            leases = [await slots.acquire("the-pause", "ann", loop.time() + 10) for _ in range(8)]
        assert len({lease.slot for lease in leases}) == 8 and await slots.live("the-pause") == 8
        assert "update_slots_out_of_bounds" in [e["event"] for e in logs]
        await slots.stop()
        assert await slots.live("the-pause") == 0
        await db.close()
        record_result("update slot rows with expires_at = infinity", "every slot of one pause", injected=8,
                      outcome="counted free and taken over, logged; all 8 slots leased")


class TestUserRows:
    async def test_an_older_signed_row_written_back_proves_nobody(
        self, db: ApiDatabase, state_db: tuple[StateDatabaseSettings, str]
    ) -> None:
        directory = PgUserDirectory(db, KEY)
        tokens = PgTokens(db, KEY)
        issued = {name: (await asyncio.to_thread(directory.issue, None, name, roles))[1]
                  for name, roles in [("ada", ["admin"]), ("mallory", ["incident-commander"]),
                                      ("trent", ["ciso"]), ("eve", ["admin"]), ("bob", ["cto"])]}

        def saved(name: str) -> tuple[object, ...]:
            with psycopg.connect(state_db[0].dsn.get_secret_value()) as conn:
                row = conn.execute("SELECT name, roles, token_sha256, created_at, signature FROM api_users "
                                   "WHERE name = %s", (name,)).fetchone()
            assert row is not None
            return tuple(row)

        def write_back(row: tuple[object, ...]) -> None:
            as_api_role(state_db[0], ("DELETE FROM api_users WHERE name = %s", (row[0],)), (
                "INSERT INTO api_users (name, roles, token_sha256, created_at, signature) "
                "VALUES (%s, %s, %s, %s, %s)", row,
            ))

        before = {name: saved(name) for name in ("mallory", "trent", "eve")}
        await asyncio.to_thread(directory.set_roles, None, "mallory", ["security-analyst"])  # demoted
        await asyncio.to_thread(directory.remove, None, "trent")  # removed
        await asyncio.to_thread(directory.issue, None, "eve", ["admin"], replace=True)  # her token replaced
        for row in before.values():
            write_back(row)
        with structlog.testing.capture_logs() as logs:
            for name in ("mallory", "trent", "eve"):
                with pytest.raises(AuthenticationError):
                    await tokens.authenticate(issued[name])
        assert [e["event"] for e in logs].count("user_row_not_vouched") == 3
        assert (await tokens.authenticate(issued["bob"])).roles == ["cto"]  # rows as recorded still prove
        # Recording the outside change (the next check) does not make the rows good either.
        change = await asyncio.to_thread(directory.check)
        assert change is not None and "mallory's roles" in change.detail
        for name in ("mallory", "trent", "eve"):
            with pytest.raises(AuthenticationError):
                await PgTokens(db, KEY).authenticate(issued[name])
        await db.close()
        record_result("older signed user rows written back by the API's database role",
                      "before a demotion, a removal, a token change", injected=3,
                      outcome="each refused at sign-in and logged; untouched users still sign in")

    async def test_putting_back_the_logs_older_head_does_not_give_the_old_roles_back(
        self, db: ApiDatabase, state_db: tuple[StateDatabaseSettings, str]
    ) -> None:
        directory = PgUserDirectory(db, KEY)
        await asyncio.to_thread(directory.issue, None, "ada", ["admin"])
        token = (await asyncio.to_thread(directory.issue, None, "mallory", ["incident-commander"]))[1]
        with psycopg.connect(state_db[0].dsn.get_secret_value()) as conn:
            row = conn.execute("SELECT name, roles, token_sha256, created_at, signature FROM api_users "
                               "WHERE name = 'mallory'").fetchone()
            head = conn.execute("SELECT lines, last, breaks, key_sha256, signature FROM api_log_heads "
                                "WHERE log = 'users'").fetchone()
        assert row is not None and head is not None
        await asyncio.to_thread(directory.set_roles, None, "mallory", ["security-analyst"])
        as_api_role(
            state_db[0],
            ("UPDATE api_users SET roles = %s, signature = %s WHERE name = 'mallory'", (row[1], row[4])),
            ("UPDATE api_log_heads SET lines = %s, last = %s, breaks = %s, key_sha256 = %s, signature = %s "
             "WHERE log = 'users'", (head[0], head[1], Jsonb(head[2]), head[3], head[4])),
        )
        other = ApiDatabase(state_db[0])
        for tokens in (PgTokens(db, KEY), PgTokens(other, KEY)):  # a replica started afterwards too
            with pytest.raises(AuthenticationError):
                await tokens.authenticate(token)
        await other.close()
        await db.close()
        record_result("an older signed user row and the users log's older signed head put back",
                      "a demoted commander", injected=2, outcome="refused at sign-in (the demotion is past the head)")


class TestAnchoredHeads:
    async def test_a_refusal_log_cut_back_to_a_saved_head_is_found(
        self, tmp_path: Path, state_db: tuple[StateDatabaseSettings, str], harness: Harness,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        settings = harness.settings.model_copy(update={"api": ApiSettings(
            runbooks_dir=tmp_path, state="postgres", state_db=state_db[0])})
        key = open_evidence_store(harness.settings.evidence).signing_key
        backends = open_backends(settings, signing_key=lambda: key)
        assert backends.database is not None
        refusals = backends.refusals(key)

        def refuse(n: int) -> None:
            refusals.append(actor=f"outsider{n}", roles=[], program="prog", action="trigger", reason="no role")

        for n in range(3):
            await asyncio.to_thread(refuse, n)
        with psycopg.connect(state_db[0].dsn.get_secret_value()) as conn:
            saved = conn.execute("SELECT lines, last, breaks, key_sha256, signature FROM api_log_heads "
                                 "WHERE log = 'refusals'").fetchone()
        assert saved is not None
        for n in range(3, 6):
            await asyncio.to_thread(refuse, n)
        assert await asyncio.to_thread(refusals.problems) == []
        as_owner(
            state_db[0],
            "GRANT DELETE ON api_log_lines TO CURRENT_USER",
            "ALTER TABLE api_log_lines DISABLE TRIGGER api_log_lines_append_only",
            "DELETE FROM api_log_lines WHERE log = 'refusals' AND seq > 3",
            f"UPDATE api_log_heads SET lines = {saved[0]}, last = '{saved[1]}', key_sha256 = '{saved[3]}', "
            f"signature = '{saved[4]}' WHERE log = 'refusals'",
            "ALTER TABLE api_log_lines ENABLE TRIGGER api_log_lines_append_only",
        )
        problems = await asyncio.to_thread(refusals.problems)
        assert any("ends at line 3, but its head anchored outside it says line 6" in p for p in problems), problems
        # A replica started afterwards holds the log to the same anchor: the store, not its memory.
        fresh = open_backends(settings, signing_key=lambda: key)
        assert fresh.database is not None
        assert await asyncio.to_thread(fresh.refusals(key).problems) == problems
        # The anchors are the store's own documents, numbered: the newest names the sixth line.
        number, anchored = HeadAnchors(lambda: open_evidence_store(harness.settings.evidence)).newest("refusals")
        assert anchored is not None and anchored.lines == 6 and number == 6
        for backends_ in (backends, fresh):
            assert backends_.database is not None
            await backends_.database.close()
        # The export an auditor keeps is held to the anchor as well.
        config = tmp_path / "config.toml"
        config.write_text(dump_settings(settings))
        assert await asyncio.to_thread(logs_main, ["export", str(tmp_path / "out"), "--config", str(config)]) == 1
        assert "its head anchored outside it says line 6" in capsys.readouterr().out
        record_result("the refusal log cut back to a saved head by the tables' owner (trigger disabled)",
                      "3 of 6 lines deleted, the head of line 3 put back", injected=3,
                      outcome="the log's check reports the cut against the head anchored in the evidence store")

    async def test_appends_whose_anchor_failed_are_anchored_by_the_periodic_pass(
        self, tmp_path: Path, state_db: tuple[StateDatabaseSettings, str], harness: Harness
    ) -> None:
        settings = harness.settings.model_copy(update={"api": ApiSettings(
            runbooks_dir=tmp_path, state="postgres", state_db=state_db[0])})
        key = open_evidence_store(harness.settings.evidence).signing_key
        backends = open_backends(settings, signing_key=lambda: key)
        assert backends.database is not None and backends.anchor_heads is not None
        db = backends.database
        unanchored = RefusalLog(PgMedium(db.sync_pool.connection, LOG_NAME), key)  # as if the store was down
        for n in range(4):
            await asyncio.to_thread(unanchored.append, actor=f"outsider{n}", roles=[], program="prog",
                                    action="trigger", reason="no role")
        anchors = HeadAnchors(lambda: open_evidence_store(harness.settings.evidence))
        assert anchors.newest("refusals") == (0, None)
        await asyncio.to_thread(backends.anchor_heads)
        _, anchored = anchors.newest("refusals")
        assert anchored is not None and anchored.lines == 4
        await db.close()

"""The shared state store on its own (real PostgreSQL): what two replicas share, and what tampering shows."""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pausegate.api.errors import Overloaded, Throttled
from pausegate.api.refusal_log import RefusalLog
from pausegate.auth.base import AuthenticationError
from pausegate.auth.directory import UserDirectory
from pausegate.config import ApiSettings, EvidenceSettings, Settings, StateDatabaseSettings, dump_settings
from pausegate.evidence.signing_keys import load_or_create_signing_key
from pausegate.state.__main__ import main as state_main
from pausegate.state.database import StateDatabase
from pausegate.state.embedded import ensure_first_admin
from pausegate.state.rate_limit import PgRateLimiter
from pausegate.state.refusals import PgRefusalLog
from pausegate.state.slots import SharedSlots
from pausegate.state.users import PgTokens, PgUserDirectory
from tests.api.replicas_support import new_state_database

KEY = Ed25519PrivateKey.generate()


@pytest.fixture
def state_db(postgres: tuple[str, Path]) -> tuple[StateDatabaseSettings, str]:
    return new_state_database(postgres[0])


@pytest.fixture
def two(state_db: tuple[StateDatabaseSettings, str]) -> Iterator[tuple[StateDatabase, StateDatabase]]:
    """Two replicas' ways into one state database."""
    a, b = StateDatabase(state_db[0]), StateDatabase(state_db[0])
    yield a, b
    a.close_sync()
    b.close_sync()


def tamper(superuser_dsn: str, statement: str) -> None:
    """What someone with full access to the database can do: bypass the API's role and its trigger."""
    with psycopg.connect(superuser_dsn, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")  # triggers off (superuser only)
        conn.execute(statement)


class TestRefusalChain:
    def test_appends_from_two_replicas_at_once_form_one_chain_the_file_check_accepts(
        self, two: tuple[StateDatabase, StateDatabase], tmp_path: Path
    ) -> None:
        logs = [PgRefusalLog(db, KEY) for db in two]

        def append(n: int) -> None:
            logs[n % 2].append(actor=f"mallory{n % 5}", roles=[], program="p", action=f"refused.x{n}", reason="no")

        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(append, range(120)))
        assert logs[0].problems() == [] and logs[1].problems() == []
        entries = list(logs[1].entries())
        assert len(entries) == 120 and {e.action for e in entries} == {f"refused.x{n}" for n in range(120)}
        # The same bytes as a file log: exported, the file log's own check accepts it...
        path = tmp_path / "refusals.jsonl"
        logs[0].export(path)
        assert RefusalLog(path, KEY).problems() == []
        # ...and it is the key that vouches for it.
        assert RefusalLog(path, Ed25519PrivateKey.generate()).problems() != []

    def test_the_api_role_cannot_rewrite_a_log_and_the_owner_cannot_either(
        self, two: tuple[StateDatabase, StateDatabase], state_db: tuple[StateDatabaseSettings, str]
    ) -> None:
        PgRefusalLog(two[0], KEY).append(actor="m", roles=[], program=None, action="refused.a", reason="r")
        settings = state_db[0]
        assert settings.owner_dsn is not None
        for dsn in (settings.dsn.get_secret_value(), settings.owner_dsn.get_secret_value()):
            for statement in ("UPDATE api_log_lines SET line = '{}'", "DELETE FROM api_log_lines",
                              "TRUNCATE api_log_lines"):
                with psycopg.connect(dsn, autocommit=True) as conn, pytest.raises(psycopg.Error) as refused:
                    conn.execute(statement)
                assert isinstance(refused.value, psycopg.errors.InsufficientPrivilege | psycopg.errors.RaiseException)
        assert PgRefusalLog(two[1], KEY).problems() == []

    @pytest.mark.parametrize("statement, found, at_the_end", [
        ("UPDATE api_log_lines SET line = replace(line, 'mallory1', 'someone') WHERE seq = 2",
         "does not follow line 2", False),
        ("DELETE FROM api_log_lines WHERE seq = 2", "numbered 3", False),
        ("DELETE FROM api_log_lines WHERE seq = (SELECT max(seq) FROM api_log_lines)",
         "the signed head says line 4", True),
        ("UPDATE api_log_heads SET lines = 3", "signature does not verify", True),
    ])
    def test_an_edit_or_delete_made_directly_in_the_database_is_found(
        self, two: tuple[StateDatabase, StateDatabase], state_db: tuple[StateDatabaseSettings, str],
        statement: str, found: str, at_the_end: bool,
    ) -> None:
        log = PgRefusalLog(two[0], KEY)
        for n in range(4):
            log.append(actor=f"mallory{n}", roles=[], program=None, action="refused.a", reason="r")
        assert log.problems() == []
        tamper(state_db[1], statement)
        problems = PgRefusalLog(two[1], KEY).problems()
        assert any(found in p for p in problems), problems
        # The next append (either replica) keeps going. A change in the middle stays a broken link; a
        # change at the end, which re-signing the head would otherwise hide, stays a break in the signed head.
        PgRefusalLog(two[1], KEY).append(actor="x", roles=[], program=None, action="refused.b", reason="r")
        after = log.problems()
        assert after, "a change made outside the API is never forgotten"
        assert any("did not end where its signed head said" in p for p in after) == at_the_end, after
        if not at_the_end:
            assert any(found in p for p in after), after


class TestUsers:
    async def test_a_user_or_role_change_on_one_replica_holds_on_the_other_at_once(
        self, two: tuple[StateDatabase, StateDatabase]
    ) -> None:
        a, b = two
        directory = PgUserDirectory(a, KEY)
        token = await asyncio.to_thread(lambda: directory.issue(None, "ann", ["security-analyst"])[1])
        tokens_b = PgTokens(b, KEY)
        assert (await tokens_b.authenticate(token)).roles == ["security-analyst"]
        await asyncio.to_thread(directory.set_roles, None, "ann", ["ciso@prog"])
        actor = await tokens_b.authenticate(token)
        assert actor.roles == [] and actor.program_roles == {"prog": ["ciso"]}
        await asyncio.to_thread(directory.remove, None, "ann")
        with pytest.raises(AuthenticationError):
            await tokens_b.authenticate(token)
        view = await asyncio.to_thread(PgUserDirectory(b, KEY).view, 100)
        assert [e.action for e in view.entries] == ["user.added", "user.roles_changed", "user.removed"]
        assert view.chain_problems == [] and view.outside_changes == 0
        await b.close()
        await a.close()

    async def test_a_row_written_directly_in_the_database_proves_nobody_and_is_recorded(
        self, two: tuple[StateDatabase, StateDatabase], state_db: tuple[StateDatabaseSettings, str]
    ) -> None:
        a, b = two
        directory = PgUserDirectory(a, KEY)
        token = await asyncio.to_thread(lambda: directory.issue(None, "mallory", ["security-analyst"])[1])
        # mallory's friend with database access gives her the admin role.
        tamper(state_db[1], "UPDATE api_users SET roles = '{admin,security-analyst}' WHERE name = 'mallory'")
        with pytest.raises(AuthenticationError):
            await PgTokens(b, KEY).authenticate(token)
        # The next change, on the other replica, first records the outside one, then itself: one chain.
        await asyncio.to_thread(PgUserDirectory(b, KEY).issue, None, "bob", ["cto"])
        view = await asyncio.to_thread(PgUserDirectory(b, KEY).view, 100)
        assert [e.action for e in view.entries] == ["user.added", "users_file.changed_outside_api", "user.added"]
        outside = [e for e in view.entries if e.action == "users_file.changed_outside_api"]
        assert len(outside) == 1 and "mallory's roles" in outside[0].detail and "not signed" in outside[0].detail
        assert view.chain_problems == []
        await b.close()
        await a.close()


class TestRateLimit:
    async def test_alternating_replicas_does_not_double_the_budget(
        self, two: tuple[StateDatabase, StateDatabase]
    ) -> None:
        limiters = [PgRateLimiter(db, rate_per_second=0.01, burst=5) for db in two]
        granted = 0
        for n in range(10):
            try:
                await limiters[n % 2].acquire("mallory")
                granted += 1
            except Throttled as exc:
                assert exc.headers and int(exc.headers["Retry-After"]) >= 1
        assert granted == 5
        await limiters[0].acquire("ann")  # another actor's bucket is untouched
        for db in two:
            await db.close()


class TestSharedSlots:
    async def test_two_replicas_never_hold_more_slots_than_the_limit(
        self, two: tuple[StateDatabase, StateDatabase]
    ) -> None:
        slots = [SharedSlots(db, 4, lease_seconds=5.0) for db in two]
        held = [lease for n in range(10) if (lease := await slots[n % 2].try_acquire("p", "ann")) is not None]
        assert len(held) == 4 and len({lease.slot for lease in held}) == 4
        assert await slots[0].live("p") == 4
        # A waiter on one replica starts as soon as the other frees a slot.
        loop = asyncio.get_running_loop()
        waiter = asyncio.create_task(slots[1].acquire("p", "bob", loop.time() + 10))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        started = loop.time()
        first = next(lease for lease in held if lease in slots[0]._held.values())
        await slots[0].release(first)
        lease = await waiter
        assert loop.time() - started < slots[1].poll_seconds + 0.2
        with pytest.raises(Overloaded):
            await slots[0].acquire("p", "carol", loop.time() + 0.3)
        for s in slots:
            await s.stop()
        assert await slots[0].live("p") == 0 and lease.pause == "p"
        for db in two:
            await db.close()

    async def test_a_replica_killed_while_holding_slots_leaks_them_only_until_its_lease_ends(
        self, state_db: tuple[StateDatabaseSettings, str]
    ) -> None:
        settings = state_db[0].model_copy(update={"slot_lease_seconds": 2.0})
        script = textwrap.dedent("""
            import asyncio, sys
            from pydantic import SecretStr
            from pausegate.config import StateDatabaseSettings
            from pausegate.state.database import StateDatabase
            from pausegate.state.slots import SharedSlots

            async def main():
                db = StateDatabase(StateDatabaseSettings(dsn=SecretStr(sys.argv[1]), slot_lease_seconds=2.0))
                slots = SharedSlots(db, 8, lease_seconds=2.0)
                for _ in range(8):
                    assert await slots.try_acquire("killed-pause", "ann") is not None
                print("held", flush=True)
                await asyncio.sleep(3600)

            asyncio.run(main())
        """)
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, settings.dsn.get_secret_value(), stdout=asyncio.subprocess.PIPE)
        try:
            assert child.stdout is not None
            lines: list[str] = []
            while not lines or lines[-1] not in ("held", ""):  # its own log lines come first
                lines.append((await child.stdout.readline()).decode().strip())
            assert lines[-1] == "held", lines
            db = StateDatabase(settings)
            slots = SharedSlots(db, 8, lease_seconds=2.0)
            # Renewed while it lives: still held after more than a lease.
            await asyncio.sleep(2.5)
            assert await slots.try_acquire("killed-pause", "bob") is None
            child.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            await child.wait()
            loop = asyncio.get_running_loop()
            leases = [await slots.acquire("killed-pause", "bob", loop.time() + 10) for _ in range(8)]
            freed_after = time.monotonic() - killed
            assert len(leases) == 8 and freed_after <= 2.0 + 1.0, freed_after
            await slots.stop()
            await db.close()
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()


class TestImport:
    async def test_users_of_a_single_process_deployment_move_in_once_and_keep_their_tokens(
        self, state_db: tuple[StateDatabaseSettings, str], tmp_path: Path
    ) -> None:
        users_file = tmp_path / "users.json"
        old = UserDirectory(users_file, KEY)
        ann = old.issue(None, "ann", ["security-analyst"])[1]
        old.issue(None, "ada", ["admin"])
        settings = Settings(api=ApiSettings(users_file=users_file, state="postgres", state_db=state_db[0]))
        assert ensure_first_admin(settings, KEY) is None  # the imported admin is the first admin
        assert ensure_first_admin(settings, KEY) is None  # and only once
        with StateDatabase(state_db[0]) as db:
            directory = PgUserDirectory(db, KEY)
            assert [u.name for u in directory.users()] == ["ada", "ann"]
            view = directory.view(100)
            assert [e.action for e in view.entries] == ["user.added", "user.added"] and view.chain_problems == []
            assert all("imported from users.json" in e.detail for e in view.entries)
            assert (await PgTokens(db, KEY).authenticate(ann)).id == "local:ann"
            await db.close()

    def test_a_hand_edited_users_file_is_not_imported(
        self, state_db: tuple[StateDatabaseSettings, str], tmp_path: Path
    ) -> None:
        users_file = tmp_path / "users.json"
        UserDirectory(users_file, KEY).issue(None, "ann", ["security-analyst"])
        users_file.write_text(users_file.read_text().replace("security-analyst", "admin"))
        settings = Settings(api=ApiSettings(users_file=users_file, state="postgres", state_db=state_db[0]))
        token = ensure_first_admin(settings, KEY)
        assert token is not None  # nobody imported: a fresh first administrator instead
        with StateDatabase(state_db[0]) as db:
            assert [u.name for u in PgUserDirectory(db, KEY).users()] == ["admin"]


class TestExport:
    def test_the_logs_export_as_files_that_verify_and_a_tampered_one_exits_1(
        self, two: tuple[StateDatabase, StateDatabase], state_db: tuple[StateDatabaseSettings, str],
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
    ) -> None:
        key_path = tmp_path / "keys" / "evidence.pem"
        key = load_or_create_signing_key(key_path)
        settings = Settings(evidence=EvidenceSettings(directory=tmp_path / "evidence", signing_key=key_path),
                            api=ApiSettings(state="postgres", state_db=state_db[0]))
        config = tmp_path / "config.toml"
        config.write_text(dump_settings(settings))
        PgUserDirectory(two[0], key).issue(None, "ann", ["security-analyst"])
        for n in range(3):
            PgRefusalLog(two[n % 2], key).append(actor=f"m{n}", roles=[], program=None, action="refused.a",
                                                 reason="r")
        assert state_main(["export", str(tmp_path / "out"), "--config", str(config)]) == 0
        assert "api-refusals.jsonl: 3 lines, intact" in capsys.readouterr().out
        tamper(state_db[1], "DELETE FROM api_log_lines WHERE log = 'users'")
        assert state_main(["export", str(tmp_path / "out2"), "--config", str(config)]) == 1
        assert "users-log.jsonl: 0 lines, 1 problems" in capsys.readouterr().out

"""The API's shared database on its own (real PostgreSQL): what two replicas share, and what it refuses.

The chain of its logs is tested with the file's, case for case, in ``tests/records/test_chain_tamper.py``;
its users in ``tests/auth/test_users_postgres.py``.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pausegate.api.errors import Overloaded, Throttled
from pausegate.api.logs import main as logs_main
from pausegate.api.rate_limits.postgres import PgRateLimiter
from pausegate.api.refusal_log import LOG_NAME, RefusalLog
from pausegate.api.update_slots import SharedSlots
from pausegate.apidb.database import ApiDatabase
from pausegate.auth.users.postgres import PgUserDirectory
from pausegate.config import ApiSettings, EvidenceSettings, Settings, StateDatabaseSettings, dump_settings
from pausegate.evidence.signing_keys import load_or_create_signing_key
from pausegate.records.files import FileMedium
from pausegate.records.postgres import PgMedium
from tests.apidb.support import tamper

KEY = Ed25519PrivateKey.generate()


def refusal_log(db: ApiDatabase, key: Ed25519PrivateKey = KEY) -> RefusalLog:
    """The refusal log in ``db``, as the API's backends open it."""
    return RefusalLog(PgMedium(db.sync_pool.connection, LOG_NAME), key)


class TestRefusalChain:
    def test_appends_from_two_replicas_at_once_form_one_chain_the_file_check_accepts(
        self, two: tuple[ApiDatabase, ApiDatabase], tmp_path: Path
    ) -> None:
        logs = [refusal_log(db) for db in two]

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
        PgMedium(two[0].sync_pool.connection, LOG_NAME).export(FileMedium(path))
        assert RefusalLog.file(path, KEY).problems() == []
        # ...and it is the key that vouches for it.
        assert RefusalLog.file(path, Ed25519PrivateKey.generate()).problems() != []

    def test_the_api_role_cannot_rewrite_a_log_and_the_owner_cannot_either(
        self, two: tuple[ApiDatabase, ApiDatabase], state_db: tuple[StateDatabaseSettings, str]
    ) -> None:
        refusal_log(two[0]).append(actor="m", roles=[], program=None, action="refused.a", reason="r")
        settings = state_db[0]
        assert settings.owner_dsn is not None
        for dsn in (settings.dsn.get_secret_value(), settings.owner_dsn.get_secret_value()):
            for statement in ("UPDATE api_log_lines SET line = '{}'", "DELETE FROM api_log_lines",
                              "TRUNCATE api_log_lines"):
                with psycopg.connect(dsn, autocommit=True) as conn, pytest.raises(psycopg.Error) as refused:
                    conn.execute(statement)
                assert isinstance(refused.value, psycopg.errors.InsufficientPrivilege | psycopg.errors.RaiseException)
        assert refusal_log(two[1]).problems() == []

    def test_a_row_deleted_in_the_middle_shows_as_numbered_out_of_turn(
        self, two: tuple[ApiDatabase, ApiDatabase], state_db: tuple[StateDatabaseSettings, str],
    ) -> None:
        """The database's own finding, beside the shared ones (``tests/records/test_chain_tamper.py``)."""
        log = refusal_log(two[0])
        for n in range(4):
            log.append(actor=f"mallory{n}", roles=[], program=None, action="refused.a", reason="r")
        tamper(state_db[1], "DELETE FROM api_log_lines WHERE seq = 2")
        problems = refusal_log(two[1]).problems()
        assert "state database log 'refusals':2: numbered 3 (lines before it removed)" in problems, problems


class TestRateLimit:
    async def test_alternating_replicas_does_not_double_the_budget(
        self, two: tuple[ApiDatabase, ApiDatabase]
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
        self, two: tuple[ApiDatabase, ApiDatabase]
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
        first = next(lease for lease in held if lease in slots[0]._held.values())
        await slots[0].release(first)
        lease = await waiter
        # the freed slot, not a fifth one: the limit held across the two replicas
        assert lease.slot == first.slot and await slots[0].live("p") == 4
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
            from pausegate.api.update_slots import SharedSlots
            from pausegate.apidb.database import ApiDatabase

            async def main():
                db = ApiDatabase(StateDatabaseSettings(dsn=SecretStr(sys.argv[1]), slot_lease_seconds=2.0))
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
            db = ApiDatabase(settings)
            slots = SharedSlots(db, 8, lease_seconds=2.0)
            # Renewed while it lives: still held after more than a lease.
            await asyncio.sleep(2.5)
            assert await slots.try_acquire("killed-pause", "bob") is None
            child.send_signal(signal.SIGKILL)
            await child.wait()
            loop = asyncio.get_running_loop()
            # Nobody gives the dead holder's slots back: all eight come free only by their leases running
            # out (acquire refuses with Overloaded at its deadline, which only guards against a hang).
            leases = [await slots.acquire("killed-pause", "bob", loop.time() + 60) for _ in range(8)]
            assert len(leases) == 8
            await slots.stop()
            await db.close()
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()


class TestExport:
    def test_the_logs_export_as_files_that_verify_and_a_tampered_one_exits_1(
        self, two: tuple[ApiDatabase, ApiDatabase], state_db: tuple[StateDatabaseSettings, str],
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
            refusal_log(two[n % 2], key).append(actor=f"m{n}", roles=[], program=None, action="refused.a",
                                                 reason="r")
        assert logs_main(["export", str(tmp_path / "out"), "--config", str(config)]) == 0
        assert "api-refusals.jsonl: 3 lines, intact" in capsys.readouterr().out
        tamper(state_db[1], "DELETE FROM api_log_lines WHERE log = 'users'")
        assert logs_main(["export", str(tmp_path / "out2"), "--config", str(config)]) == 1
        assert "users-log.jsonl: 0 lines, 1 problems" in capsys.readouterr().out

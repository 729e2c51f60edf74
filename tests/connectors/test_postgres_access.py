"""The PostgreSQL dataset-access connector against a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from psycopg import AsyncConnection

from pausegate.connectors.postgres import verify as verify_module
from pausegate.connectors.postgres.access import PostgresAccess
from pausegate.connectors.postgres.plan import Statement
from pausegate.errors import TargetRejectedError, TargetUnavailableError
from pausegate.models.access import AccessPath, ExposureScope, GrantSpec, MembershipRecord, RoleAccess
from pausegate.models.runbook import DatasetSpec
from pausegate.policy.access_plan import plan_diff, validate_plan_grants
from pausegate.reference.example.seed import employee_role, seed_example

if TYPE_CHECKING:
    from conftest import Database

TELEMETRY = DatasetSpec(
    name="telemetry",
    connection="telemetry-db",
    schema="telemetry",
    tables=["keystrokes", "mouse_events"],
    break_glass_roles=["security_breakglass"],
)
KEYSTROKES = "SELECT * FROM telemetry.keystrokes"
MOUSE = "SELECT * FROM telemetry.mouse_events"


def paths(scope: ExposureScope, role: str, obj: str) -> set[tuple[AccessPath, str | None]]:
    return {(a.path, a.via) for a in scope.access if a.role == role and a.object == obj}


# -- the worked example ---------------------------------------------------------------------------


@pytest.fixture
def telemetry(database: Database) -> Database:
    seed_example(database.dsn, employees=5)
    return database


async def test_scope_records_every_path_of_the_worked_example(telemetry: Database) -> None:
    scope = await PostgresAccess(telemetry.dsn).record_scope(TELEMETRY)

    k, m = "telemetry.keystrokes", "telemetry.mouse_events"
    assert paths(scope, "all_employees", k) == {(AccessPath.DIRECT, None)}
    assert paths(scope, "PUBLIC", m) == {(AccessPath.PUBLIC, None)}
    assert paths(scope, "PUBLIC", k) == set()
    assert paths(scope, "telemetry_analysts", k) == {(AccessPath.DIRECT, None)}
    assert paths(scope, "ml_trainer", k) == {(AccessPath.MEMBERSHIP, "telemetry_analysts")}
    assert paths(scope, employee_role(3), m) == {(AccessPath.MEMBERSHIP, "all_employees")}
    assert next(a for a in scope.access if a.role == employee_role(3)).login
    ingest = [g for g in scope.grants if g.grantee == "telemetry_ingest"]
    assert {(g.object, g.privilege) for g in ingest} >= {
        (k, "INSERT"),
        (m, "INSERT"),
        ("telemetry.keystrokes_id_seq", "USAGE"),
        ("telemetry", "USAGE"),
    }
    assert any(
        g.grantee == "PUBLIC" and g.object == "telemetry" and g.privilege == "USAGE" for g in scope.grants
    )
    # the dashboard view in another schema is a second door to the keystrokes: recorded, with what it reads
    view = "analytics.recent_keystrokes"
    assert set(scope.objects) == {k, m, "telemetry.keystrokes_id_seq", "telemetry.mouse_events_id_seq", view}
    assert next(o for o in scope.object_details if o.name == view).depends_on == [k]
    assert paths(scope, "all_employees", view) == {(AccessPath.DIRECT, None)}
    # The scope is evidence: it must survive JSON.
    assert ExposureScope.model_validate_json(scope.model_dump_json()) == scope


async def test_revoke_verify_restore_worked_example(telemetry: Database) -> None:
    access = PostgresAccess(telemetry.dsn)
    scope = await access.record_scope(TELEMETRY)
    employee = employee_role(2)
    assert telemetry.can_read(employee, KEYSTROKES) and telemetry.can_read(employee, MOUSE)

    outcome = await access.revoke_detailed(TELEMETRY, scope)
    assert outcome.statements > 0
    assert await access.verify(TELEMETRY, scope) == []
    for user in (employee, "ml_trainer", "telemetry_ingest"):
        assert not telemetry.can_read(user, KEYSTROKES)
        assert not telemetry.can_read(user, MOUSE)
    assert not telemetry.can_read(employee, "SELECT * FROM analytics.recent_keystrokes")  # the side door too
    assert telemetry.can_read("security_breakglass", KEYSTROKES)
    assert telemetry.can_read("security_breakglass", MOUSE)
    check = await access.check(TELEMETRY, scope)
    assert check.contained and check.violations == []

    # Again: nothing left to do, nothing fails, same state.
    acl = telemetry.acl()
    assert (await access.revoke(TELEMETRY, scope)).statements == 0
    assert telemetry.acl() == acl

    keep = ["agent_id", "captured_at", "employee", "id", "key_code", "window_title"]
    plan = [
        GrantSpec(
            dataset="telemetry",
            role="telemetry_analysts",
            table="keystrokes",
            privileges=["SELECT"],
            columns=keep,
        ),
        GrantSpec(dataset="telemetry", role="telemetry_ingest", table="keystrokes", privileges=["INSERT"]),
        GrantSpec(dataset="telemetry", role="telemetry_ingest", table="mouse_events", privileges=["INSERT"]),
    ]
    result = await access.restore(TELEMETRY, plan)
    assert result.verified and result.missing == []
    assert await access.restore(TELEMETRY, plan) == result  # idempotent

    granted = telemetry.acl() - acl
    assert granted == {
        *(("telemetry.keystrokes", "telemetry_analysts", "postgres", "SELECT", c) for c in keep),
        ("telemetry.keystrokes", "telemetry_ingest", "postgres", "INSERT", None),
        ("telemetry.mouse_events", "telemetry_ingest", "postgres", "INSERT", None),
        ("telemetry.keystrokes_id_seq", "telemetry_ingest", "postgres", "USAGE", None),
        ("telemetry.mouse_events_id_seq", "telemetry_ingest", "postgres", "USAGE", None),
        # No schema USAGE: the schema also holds the consent table, outside the dataset, so containment
        # kept the schema's USAGE grants (it closes the dataset's tables, not the rest of the schema).
    }
    assert not telemetry.can_read(employee, KEYSTROKES)
    assert not telemetry.can_read(employee, MOUSE)
    assert not telemetry.can_read("ml_trainer", KEYSTROKES)  # typed_content is not granted
    assert telemetry.can_read("ml_trainer", "SELECT key_code, window_title FROM telemetry.keystrokes")
    with telemetry.connect("telemetry_ingest") as conn:
        conn.execute("INSERT INTO telemetry.keystrokes (agent_id, employee, key_code) VALUES ('a', 'e', 1)")
    # information_schema agrees with aclexplode on the column grants.
    with telemetry.connect() as conn:
        cols = {
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.column_privileges "
                "WHERE grantee = 'telemetry_analysts' "
                "AND table_name = 'keystrokes' AND privilege_type = 'SELECT'"
            )
        }
    assert cols == set(keep)


async def test_sessions_of_former_readers_are_terminated(telemetry: Database) -> None:
    access = PostgresAccess(telemetry.dsn)
    scope = await access.record_scope(TELEMETRY)
    reader = telemetry.connect(employee_role(1))
    breakglass = telemetry.connect("security_breakglass")
    try:
        outcome = await access.revoke_detailed(TELEMETRY, scope)
        assert outcome.sessions_terminated >= 1
        with pytest.raises(psycopg.OperationalError):
            reader.execute("SELECT 1")
        breakglass.execute(KEYSTROKES)  # break-glass sessions are left alone
    finally:
        reader.close()
        breakglass.close()


async def test_new_grant_after_containment_is_a_violation(telemetry: Database) -> None:
    access = PostgresAccess(telemetry.dsn)
    scope = await access.record_scope(TELEMETRY)
    await access.revoke(TELEMETRY, scope)
    with telemetry.connect() as conn:
        conn.execute("GRANT USAGE ON SCHEMA telemetry TO all_employees")
        conn.execute("GRANT SELECT ON telemetry.keystrokes TO all_employees")
    check = await access.check(TELEMETRY, scope)
    assert not check.contained
    assert f"{employee_role(4)}:telemetry.keystrokes:membership(via all_employees)" in check.violations
    residual = await access.verify(TELEMETRY, scope)
    assert any(r.role == "all_employees" and r.path is AccessPath.DIRECT for r in residual)


# -- every path -----------------------------------------------------------------------------------


async def test_every_path_is_recorded_closed_and_verified(
    database: Database, every_path: Callable[[], DatasetSpec]
) -> None:
    spec = every_path()
    p = database.prefix
    access = PostgresAccess(database.dsn)
    scope = await access.record_scope(spec)
    people, events, view, mv = "data.people", "data.events", "reports.people_v", "reports.events_mv"
    fn = "reports.peek()"

    expected = {
        (f"{p}direct", people): AccessPath.DIRECT,
        (f"{p}col", people): AccessPath.DIRECT,
        (f"{p}regrantee", people): AccessPath.DIRECT,
        (f"{p}nested", people): AccessPath.MEMBERSHIP,
        (f"{p}setonly", events): AccessPath.MEMBERSHIP,
        ("PUBLIC", events): AccessPath.PUBLIC,
        (f"{p}reader_all", people): AccessPath.PREDEFINED,
        (f"{p}writer_all", events): AccessPath.PREDEFINED,
        (f"{p}owner", people): AccessPath.OWNER,
        (f"{p}owner_member", events): AccessPath.OWNER,
        (f"{p}super", people): AccessPath.SUPERUSER,
        (f"{p}viewer", view): AccessPath.DIRECT,
        (f"{p}mviewer", mv): AccessPath.DIRECT,
        (f"{p}fn", fn): AccessPath.FUNCTION,
        ("PUBLIC", fn): AccessPath.PUBLIC,
    }
    recorded = {(a.role, a.object): a.path for a in scope.access}
    for key, path in expected.items():
        assert key in recorded and any(a.path is path for a in scope.access if (a.role, a.object) == key), key
    assert any(a.path is AccessPath.DEFAULT_PRIVILEGES and a.role == f"{p}future" for a in scope.access)
    assert any(g.column == "name" and g.grantee == f"{p}col" for g in scope.grants)
    assert any(g.grantor == f"{p}grantopt" and g.grantee == f"{p}regrantee" for g in scope.grants)
    assert any(g.grantable and g.grantee == f"{p}grantopt" for g in scope.grants)
    details = {o.name: o for o in scope.object_details}
    assert details[view].depends_on == [people] and details[events].rls
    assert {r.name for r in scope.roles if r.bypassrls} >= {f"{p}bypass"}

    readers = {
        f"{p}direct": ["SELECT * FROM data.people"],
        f"{p}col": ["SELECT name FROM data.people"],
        f"{p}regrantee": ["SELECT * FROM data.people"],
        f"{p}nested": ["SELECT * FROM data.events"],
        f"{p}reader_all": ["SELECT * FROM data.people", "SELECT * FROM reports.people_v"],
        f"{p}owner_member": ["SELECT * FROM data.people"],
        f"{p}viewer": ["SELECT * FROM reports.people_v"],
        f"{p}mviewer": ["SELECT * FROM reports.events_mv"],
        f"{p}fn": ["SELECT * FROM reports.peek()"],
        f"{p}anyone": ["SELECT * FROM data.events", "SELECT * FROM reports.peek()"],
        f"{p}bypass": ["SELECT * FROM data.events"],
    }
    for user, queries in readers.items():
        for q in queries:
            assert database.can_read(user, q), (user, q)

    outcome = await access.revoke_detailed(spec, scope)
    assert outcome.statements > 0
    # The cascade from grantopt took break-glass's only grant on the view, and revoking PUBLIC its
    # EXECUTE on the function: both were granted back to it directly.
    assert sorted(outcome.break_glass_regranted) == [f"{p}bg:EXECUTE:{fn}", f"{p}bg:SELECT:{view}"]

    for user, queries in readers.items():
        for q in queries:
            assert not database.can_read(user, q), (user, q)
    with database.connect(f"{p}setonly") as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(f"SET ROLE {p}group")  # a fixed test role name, not user input
        conn.execute("SELECT * FROM data.events")
    for q in ("SELECT * FROM data.people", "SELECT * FROM data.events", "SELECT * FROM reports.people_v"):
        assert database.can_read(f"{p}bg", q)

    residual = await access.verify(spec, scope)
    # Exactly what no REVOKE closes: the other superuser on everything, the owner on what it owns.
    ours = {(a.role, a.object, a.path) for a in residual if a.role.startswith(p)}
    assert ours == {
        *((f"{p}super", o, AccessPath.SUPERUSER) for o in scope.objects),
        # ALTER TABLE ... OWNER moved the owned sequences too: the owner role owns every object.
        *((f"{p}owner", o, AccessPath.OWNER) for o in scope.objects),
    }
    assert {a.role for a in residual} == {f"{p}super", f"{p}owner"}
    assert len(scope.objects) == 7  # people, events, their sequences, the view, the matview, the function
    check = await access.check(spec, scope)
    assert check.contained and check.violation_count == 0 and len(check.accepted) == len(residual)

    # A table created after containment, by the operator or the owner, is not readable by former readers.
    with database.connect() as conn:
        conn.execute("CREATE TABLE data.later (x int)")
        conn.execute("GRANT CREATE ON SCHEMA data TO " + p + "owner")  # test-generated role name
        conn.execute("SET ROLE " + p + "owner")
        conn.execute("CREATE TABLE data.later_owned (x int)")
    for user in (f"{p}future", f"{p}nested", f"{p}anyone", f"{p}direct"):
        assert not database.can_read(user, "SELECT * FROM data.later")
        assert not database.can_read(user, "SELECT * FROM data.later_owned")
    assert (await access.revoke(spec, scope)).statements == 0


async def revoked(database: Database, every_path: Callable[[], DatasetSpec]
                  ) -> tuple[DatasetSpec, PostgresAccess, ExposureScope]:
    """The every-path dataset with its scope recorded and every path revoked."""
    spec = every_path()
    access = PostgresAccess(database.dsn)
    scope = await access.record_scope(spec)
    await access.revoke(spec, scope)
    return spec, access, scope


async def test_verify_finds_a_default_privilege_revoke_missed(
    database: Database, every_path: Callable[[], DatasetSpec]
) -> None:
    spec, access, scope = await revoked(database, every_path)
    p = database.prefix
    with database.connect() as conn:
        conn.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA data GRANT SELECT ON TABLES TO {p}anyone")
        conn.execute(f"GRANT USAGE ON SCHEMA data TO {p}anyone")
    residual = await access.verify(spec, scope)
    assert any(
        a.role == f"{p}anyone"
        and a.path is AccessPath.DEFAULT_PRIVILEGES
        and "<new table of postgres>" in a.object
        for a in residual
    )
    assert not (await access.check(spec, scope)).contained


@pytest.mark.parametrize("holders_seen", [True, False])
async def test_verify_finds_a_default_privilege_to_a_group_for_its_members(
    database: Database, every_path: Callable[[], DatasetSpec], monkeypatch: pytest.MonkeyPatch, holders_seen: bool
) -> None:
    """A default privilege added after containment, for a group: a new table is readable by the group
    and its nested members. Found through the new table's ACL and
    memberships; and should that read miss them, through the sample of every other role."""
    spec, access, scope = await revoked(database, every_path)
    p = database.prefix
    with database.connect() as conn:
        conn.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA data GRANT SELECT ON TABLES TO {p}group")
    if not holders_seen:
        monkeypatch.setattr(verify_module, "FUTURE_HOLDERS_Q", "SELECT 'PUBLIC' WHERE %(nsp)s::oid IS NULL "
                            "AND %(name)s::text IS NULL AND %(predefined)s::text[] IS NULL")
    residual = await access.verify(spec, scope)
    new_table = [a for a in residual if a.path is AccessPath.DEFAULT_PRIVILEGES and "<new table of" in a.object]
    assert {a.role for a in new_table} >= {f"{p}group", f"{p}subgroup", f"{p}nested"}
    assert f"{p}anyone" not in {a.role for a in new_table}
    assert not (await access.check(spec, scope)).contained


async def test_a_table_whose_owner_revoked_its_own_privileges_is_captured(database: Database) -> None:
    """An empty ACL (not NULL) is read as no grants, not refused."""
    with database.connect() as conn:
        conn.execute("CREATE SCHEMA bare")
        conn.execute("CREATE TABLE bare.t (x int)")
        conn.execute("REVOKE ALL ON bare.t FROM CURRENT_USER")
    spec = DatasetSpec(name="bare", connection="bare-db", schema="bare")
    scope = await PostgresAccess(database.dsn).record_scope(spec)
    assert scope.objects == ["bare.t"]
    assert not [g for g in scope.grants if g.object == "bare.t"]


# -- crash half-way -------------------------------------------------------------------------------


class SimulatedCrash(Exception):
    """A revoke stopped part-way, as if its process died."""


class CrashingAccess(PostgresAccess):
    """Stops a revoke after ``stop_after`` statements. With ``each_committed`` every statement commits on
    a connection of its own first: the state a non-transactional run leaves when it dies."""

    def __init__(self, dsn: str, stop_after: int, *, each_committed: bool = False) -> None:
        super().__init__(dsn)
        self.dsn, self.stop_after, self.each_committed, self.executed = dsn, stop_after, each_committed, 0

    async def execute(self, conn: AsyncConnection[Any], statement: Statement) -> None:
        if self.each_committed:
            async with await AsyncConnection.connect(self.dsn, autocommit=True) as own:
                await super().execute(own, statement)
        else:
            await super().execute(conn, statement)
        self.executed += 1
        if self.executed >= self.stop_after:
            raise SimulatedCrash(f"stopped after {self.executed} statements")


@pytest.mark.parametrize("stop_after", [1, 3, 7])
async def test_revoke_after_a_crash_half_way_ends_like_a_clean_run(
    database: Database,
    sibling_database: Database,
    load_every_path: Callable[[Database, bool], DatasetSpec],
    stop_after: int,
) -> None:
    spec = load_every_path(database, True)
    access = PostgresAccess(database.dsn)
    scope = await access.record_scope(spec)
    before = database.acl()
    # Commit statement by statement and stop: the state a non-transactional run leaves when it dies.
    with pytest.raises(SimulatedCrash):
        await CrashingAccess(database.dsn, stop_after, each_committed=True).revoke(spec, scope)
    assert database.acl() != before
    assert (await access.revoke(spec, scope)).statements > 0
    retried = database.acl()
    assert (await access.revoke(spec, scope)).statements == 0
    assert database.acl() == retried

    # A clean run on the same fixture in another database (roles are shared) ends in the same state.
    load_every_path(sibling_database, False)
    clean = PostgresAccess(sibling_database.dsn)
    await clean.revoke(spec, await clean.record_scope(spec))
    assert sibling_database.acl() == retried
    assert await access.verify(spec, scope) == await clean.verify(spec, scope)


async def test_a_killed_revoke_leaves_nothing_half_done(telemetry: Database) -> None:
    access = PostgresAccess(telemetry.dsn)
    scope = await access.record_scope(TELEMETRY)
    before = telemetry.acl()
    with pytest.raises(SimulatedCrash):
        await CrashingAccess(telemetry.dsn, 2).revoke(TELEMETRY, scope)  # inside the one transaction
    assert telemetry.acl() == before
    await access.revoke(TELEMETRY, scope)
    assert await access.verify(TELEMETRY, scope) == []


# -- errors ---------------------------------------------------------------------------------------


async def test_errors_are_classified(telemetry: Database) -> None:
    with pytest.raises(TargetUnavailableError):
        await PostgresAccess("postgresql://postgres:@/postgres?host=/nonexistent/socket").record_scope(
            TELEMETRY
        )
    with pytest.raises(TargetRejectedError, match="schema 'nope' does not exist"):
        await PostgresAccess(telemetry.dsn).record_scope(TELEMETRY.model_copy(update={"schema_name": "nope"}))
    with pytest.raises(TargetRejectedError, match="ghost not found"):
        await PostgresAccess(telemetry.dsn).record_scope(TELEMETRY.model_copy(update={"tables": ["ghost"]}))
    weak = PostgresAccess(telemetry.dsn_as(employee_role(1)))
    scope = await PostgresAccess(telemetry.dsn).record_scope(TELEMETRY)
    with pytest.raises(TargetRejectedError, match="lacks a privilege"):
        await weak.revoke(TELEMETRY, scope)
    with pytest.raises(TargetRejectedError, match="role 'nobody_at_all' does not exist"):
        await PostgresAccess(telemetry.dsn).restore(
            TELEMETRY,
            [GrantSpec(dataset="telemetry", role="nobody_at_all", table="keystrokes", privileges=["SELECT"])],
        )


# -- plan policy (pure) ---------------------------------------------------------------------------


def test_plan_validation_rejects_public_and_out_of_policy_grantees() -> None:
    with pytest.raises(ValueError, match="every role"):
        GrantSpec(dataset="telemetry", role="public", table="keystrokes", privileges=["SELECT"])
    with pytest.raises(ValueError, match="cannot be restricted to columns"):
        GrantSpec(dataset="telemetry", role="a", table="keystrokes", privileges=["DELETE"], columns=["id"])
    ok = GrantSpec(dataset="telemetry", role="telemetry_analysts", table="keystrokes", privileges=["SELECT"])
    outsider = GrantSpec(dataset="telemetry", role="all_employees", table="keystrokes", privileges=["SELECT"])
    predefined = GrantSpec(
        dataset="telemetry", role="pg_read_all_data", table="keystrokes", privileges=["SELECT"]
    )
    other = GrantSpec(
        dataset="telemetry", role="telemetry_analysts", table="passwords", privileges=["SELECT"]
    )
    allowed = ["telemetry_analysts", "telemetry_ingest"]
    datasets = {"telemetry": ["keystrokes", "mouse_events"]}
    assert validate_plan_grants([ok], allowed_roles=allowed, datasets=datasets) == []
    problems = validate_plan_grants(
        [ok, outsider, predefined, other, ok], allowed_roles=allowed, datasets=datasets
    )
    assert any("all_employees is not an allowed grantee" in p for p in problems)
    assert any("pg_read_all_data is a predefined role" in p for p in problems)
    assert any("'passwords' is not a table" in p for p in problems)
    assert any("repeats" in p for p in problems)
    assert validate_plan_grants([outsider]) == []  # no allowed set: any named role


def test_plan_diff() -> None:
    def ra(role: str, obj: str, path: AccessPath, via: str | None = None) -> RoleAccess:
        return RoleAccess(role=role, object=f"telemetry.{obj}", path=path, via=via)

    scope = ExposureScope(
        dataset="telemetry",
        schema_name="telemetry",
        objects=["telemetry.keystrokes", "telemetry.mouse_events"],
        grants=[],
        access=[
            ra("all_employees", "keystrokes", AccessPath.DIRECT),
            ra("e1", "keystrokes", AccessPath.MEMBERSHIP, "all_employees"),
            ra("PUBLIC", "mouse_events", AccessPath.PUBLIC),
            ra("telemetry_analysts", "keystrokes", AccessPath.DIRECT),
            ra("telemetry_analysts", "mouse_events", AccessPath.DIRECT),
            ra("ml_trainer", "keystrokes", AccessPath.MEMBERSHIP, "telemetry_analysts"),
            ra("security_breakglass", "keystrokes", AccessPath.DIRECT),
            ra("postgres", "keystrokes", AccessPath.SUPERUSER),
        ],
        break_glass_roles=["security_breakglass"],
        memberships=[
            MembershipRecord(role="all_employees", member="e1", grantor="postgres"),
            MembershipRecord(role="telemetry_analysts", member="ml_trainer", grantor="postgres"),
        ],
    )
    diff = plan_diff(
        scope,
        [
            GrantSpec(
                dataset="telemetry", role="telemetry_analysts", table="keystrokes", privileges=["SELECT"]
            ),
            GrantSpec(
                dataset="telemetry", role="telemetry_ingest", table="keystrokes", privileges=["INSERT"]
            ),
        ],
    )
    assert diff.loses == {
        "PUBLIC": ["telemetry.mouse_events"],
        "all_employees": ["telemetry.keystrokes"],
        "e1": ["telemetry.keystrokes"],
        "telemetry_analysts": ["telemetry.mouse_events"],
    }
    assert diff.keeps == {
        "ml_trainer": ["telemetry.keystrokes"],
        "postgres": ["telemetry.keystrokes"],
        "security_breakglass": ["telemetry.keystrokes"],
        "telemetry_analysts": ["telemetry.keystrokes"],
    }
    assert diff.gains == {"telemetry_ingest": ["telemetry.keystrokes"]}

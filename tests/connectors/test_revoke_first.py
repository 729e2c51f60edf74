"""Access first, proof right after: the revoke captures the raw catalog in its own transaction, and the
scope derived from that capture afterwards is exactly the scope recorded before revoking."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from psycopg import AsyncConnection, sql

from pausegate.canonical import canonical_json
from pausegate.connectors.postgres import verify as verify_module
from pausegate.connectors.postgres.access import PostgresAccess
from pausegate.connectors.postgres.catalog import PUBLIC, load_state
from pausegate.connectors.postgres.plan import Statement, kept_roles
from pausegate.connectors.postgres.revoke import lost_from_scope, lost_login_roles
from pausegate.connectors.postgres.scope import scope_document, scope_facts
from pausegate.connectors.postgres.snapshot import state_from_snapshot
from pausegate.connectors.scope_facts import ScopeFacts
from pausegate.errors import TargetUnavailableError
from pausegate.models.access import ExposureScope
from pausegate.models.runbook import DatasetSpec
from pausegate.reference.example.seed import seed_example

if TYPE_CHECKING:
    from conftest import Database

TELEMETRY = DatasetSpec(
    name="telemetry", connection="telemetry-db", schema="telemetry", tables=["keystrokes", "mouse_events"],
    break_glass_roles=["security_breakglass"],
)

# Names that JSON must escape or that are not ASCII: the scope document is written as text.
ODD_NAMES = ['q"uote', "back\\slash", "ünï cødé", "tab\there", "new\nline"]


def odd_org(db: Database) -> DatasetSpec:
    """A small organisation with awkward role names: groups, nested membership, PUBLIC, a column grant."""
    p = db.prefix
    with db.connect() as conn, conn.transaction():
        conn.execute("CREATE SCHEMA org")
        conn.execute("GRANT USAGE ON SCHEMA org TO PUBLIC")
        conn.execute("CREATE TABLE org.a (id int, v text)")
        conn.execute("CREATE TABLE org.b (id int, v text)")
        conn.execute("CREATE VIEW org.v AS SELECT id FROM org.a")
        conn.execute("GRANT SELECT ON org.b TO PUBLIC")
        for i, odd in enumerate(ODD_NAMES):
            group, user = sql.Identifier(f"{p}g{i}{odd}"), sql.Identifier(f"{p}u{i}{odd}")
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(group))
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(user, group))
            conn.execute(sql.SQL("GRANT SELECT ON org.a TO {}").format(group))
            conn.execute(sql.SQL("GRANT SELECT (v) ON org.b TO {}").format(user))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(f"{p}bg")))
        conn.execute(sql.SQL("GRANT SELECT ON org.a, org.b TO {}").format(sql.Identifier(f"{p}bg")))
    return DatasetSpec(name="org", connection="org-db", schema="org", break_glass_roles=[f"{p}bg"])


@pytest.fixture(params=["every_path", "every_path_one_table", "worked_example", "odd_names"])
def fixture_spec(request: pytest.FixtureRequest, database: Database,
                 load_every_path: Callable[[Database, bool], DatasetSpec]) -> Iterator[DatasetSpec]:
    """Each SQL fixture the connector tests know, loaded into the test database, with its dataset."""
    if request.param == "worked_example":
        seed_example(database.dsn, employees=5)
        yield TELEMETRY
    elif request.param == "odd_names":
        yield odd_org(database)
    else:
        spec = load_every_path(database, True)
        yield spec if request.param == "every_path" else spec.model_copy(update={"tables": ["people"]})


async def _capture(access: PostgresAccess, spec: DatasetSpec) -> dict[str, Any]:
    captured: list[dict[str, Any]] = []

    async def persist(document: dict[str, Any]) -> int:
        captured.append(canonical_roundtrip(document))
        return len(captured)

    await access.revoke_capturing(spec, persist)
    assert len(captured) == 1
    return captured[0]


def canonical_roundtrip(document: dict[str, Any]) -> Any:
    """What the evidence store gives back: the document through canonical JSON and back."""
    import json

    return json.loads(canonical_json(document))


def without_time(scope: ExposureScope) -> dict[str, Any]:
    dumped = scope.model_dump(mode="json")
    dumped.pop("recorded_at")
    return dumped


class TestTheScopeDerivedAfterTheRevoke:
    async def test_equals_the_scope_recorded_before_it_on_every_fixture(
        self, database: Database, fixture_spec: DatasetSpec
    ) -> None:
        access = PostgresAccess(database.dsn)
        before = await access.record_scope(fixture_spec)
        snapshot = await _capture(access, fixture_spec)
        derived = access.derive_scope(fixture_spec, snapshot)

        assert without_time(derived) == without_time(before)
        assert derived.recorded_at is not None and before.recorded_at is not None
        assert before.recorded_at <= derived.recorded_at
        assert before.access, "the fixture must give access to something"

    async def test_its_document_is_the_models_canonical_json_and_its_facts_the_models(
        self, database: Database, fixture_spec: DatasetSpec
    ) -> None:
        access = PostgresAccess(database.dsn)
        snapshot = await _capture(access, fixture_spec)
        state, captured_at = state_from_snapshot(snapshot)
        model = access.derive_scope(fixture_spec, snapshot)

        assert scope_document(fixture_spec, state, captured_at) == canonical_json(model.model_dump(mode="json"))
        assert scope_facts(state) == ScopeFacts.of(model)
        derived = access.scope_from_snapshot(fixture_spec, snapshot)
        assert derived.document() == canonical_json(model.model_dump(mode="json"))
        assert derived.facts() == ScopeFacts.of(model)

    async def test_the_sessions_ended_are_those_the_recorded_scope_names(
        self, database: Database, fixture_spec: DatasetSpec
    ) -> None:
        access = PostgresAccess(database.dsn)
        scope = await access.record_scope(fixture_spec)
        state, _ = state_from_snapshot(await _capture(access, fixture_spec))
        kept = kept_roles(state, fixture_spec.break_glass_roles)

        assert lost_login_roles(state, kept) == lost_from_scope(scope, state, kept)
        assert lost_login_roles(state, kept), "some login role loses access on every fixture"


class FailingAfter(PostgresAccess):
    """Raises after ``stop_after`` REVOKE statements, inside the revoke's transaction."""

    def __init__(self, dsn: str, stop_after: int) -> None:
        super().__init__(dsn)
        self.stop_after, self.executed = stop_after, 0

    async def execute(self, conn: AsyncConnection[Any], statement: Statement) -> None:
        await super().execute(conn, statement)
        self.executed += 1
        if self.executed >= self.stop_after:
            raise psycopg.OperationalError("connection lost (simulated)")


class TestARevokeInterruptedBeforeCommit:
    @pytest.mark.parametrize("stop_after", [1, 4])
    async def test_leaves_access_as_it_was_and_a_retry_completes_with_the_first_capture(
        self, database: Database, load_every_path: Callable[[Database, bool], DatasetSpec], stop_after: int
    ) -> None:
        spec = load_every_path(database, True)
        before = database.acl()
        stored: list[dict[str, Any]] = []

        async def persist(document: dict[str, Any]) -> int:
            if not stored:
                stored.append(canonical_roundtrip(document))
            return len(stored)

        with pytest.raises(TargetUnavailableError, match="simulated"):
            await FailingAfter(database.dsn, stop_after).revoke_capturing(spec, persist)
        assert database.acl() == before, "nothing of the interrupted revoke may remain"
        assert database.can_read(f"{database.prefix}direct", "SELECT * FROM data.people")

        access = PostgresAccess(database.dsn)
        outcome, _ = await access.revoke_capturing(spec, persist, earlier_snapshot=stored[0])
        assert outcome.statements > 0 and outcome.access_gone_at is not None
        assert outcome.captured_at is not None and outcome.captured_at <= outcome.access_gone_at
        assert database.acl() != before
        assert not database.can_read(f"{database.prefix}direct", "SELECT * FROM data.people")
        scope = access.derive_scope(spec, stored[0])
        assert not [r for r in await access.verify(spec, scope) if r.path.value not in ("owner", "superuser")]
        again, _ = await access.revoke_capturing(spec, persist, earlier_snapshot=stored[0])
        assert again.statements == 0

    async def test_a_capture_that_cannot_be_stored_revokes_nothing(
        self, database: Database, load_every_path: Callable[[Database, bool], DatasetSpec]
    ) -> None:
        spec = load_every_path(database, True)
        before = database.acl()

        async def persist(document: dict[str, Any]) -> int:
            raise TargetUnavailableError("evidence store unavailable (simulated)")

        with pytest.raises(TargetUnavailableError, match="evidence store"):
            await PostgresAccess(database.dsn).revoke_capturing(spec, persist)
        assert database.acl() == before


class TestVerificationAtCompanySize:
    """Above ``EXACT_PAIRS`` pairs, roles are put to pg_has_role against the remaining grantees, and
    only the pairs that may still read go to the privilege functions: the verdict asking each pair gives."""

    async def test_a_grant_back_to_a_group_is_found_for_every_member_both_ways(
        self, database: Database, fixture_spec: DatasetSpec, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        access = PostgresAccess(database.dsn)
        snapshot = await _capture(access, fixture_spec)
        facts = access.scope_from_snapshot(fixture_spec, snapshot).facts()
        scope = access.derive_scope(fixture_spec, snapshot)

        async def still_privileged() -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
            """(each pair asked, the membership answer) of the privilege step alone."""
            async with await AsyncConnection.connect(database.dsn, autocommit=True) as conn:
                state = await load_state(conn, fixture_spec, strict=False)
                objs = {o.qname: o for o in state.objects}
                asked = {o: (facts.roles.get(o, set()) & set(state.roles)) | {PUBLIC} for o in objs}
                monkeypatch.setattr(verify_module, "EXACT_PAIRS", 10**9)
                each = set(await verify_module.still_privileged(conn, state, asked, objs))
                monkeypatch.setattr(verify_module, "EXACT_PAIRS", 0)
                monkeypatch.setattr(verify_module, "SAMPLED_PAIRS", 0)  # no cross-check to fall back on
                return each, set(await verify_module.still_privileged(conn, state, asked, objs))

        async def both_ways() -> set[str]:
            each, by_membership = await still_privileged()
            assert by_membership == each
            monkeypatch.setattr(verify_module, "EXACT_PAIRS", 10**9)
            each_pair = {r.describe() for r in await access.verify_facts(fixture_spec, facts)}
            monkeypatch.setattr(verify_module, "EXACT_PAIRS", 0)
            assert {r.describe() for r in await access.verify_facts(fixture_spec, facts)} == each_pair
            return each_pair

        clean = await both_ways()
        # Drift after the revoke: a group of the scope gets a table back.
        group = next(a.via for a in scope.access if a.path.value == "membership" and a.via)
        table = next(o for o in scope.objects if o.endswith(("people", "keystrokes", ".a")))
        with database.connect() as conn:
            conn.execute(sql.SQL("GRANT SELECT ON TABLE {} TO {}").format(
                sql.Identifier(*table.split(".")), sql.Identifier(group)))
        drifted = await both_ways()

        members = {a.role for a in scope.access if a.via == group and a.object == table}
        kept = {*fixture_spec.break_glass_roles, scope.operator_role}
        assert members - kept
        assert {f"{m}:{table}:membership(via {group})" for m in members - kept} <= drifted
        assert clean < drifted

        # a grant back to one person (a role nobody is a member of) is found for that person
        person = sorted(members - kept)[0]
        with database.connect() as conn:
            conn.execute(sql.SQL("GRANT SELECT ON TABLE {} TO {}").format(
                sql.Identifier(*table.split(".")), sql.Identifier(person)))
        assert f"{person}:{table}:direct" in await both_ways()

        # and a grant back to PUBLIC reaches every role the scope recorded on that table
        with database.connect() as conn:
            conn.execute(sql.SQL("GRANT SELECT ON TABLE {} TO PUBLIC").format(sql.Identifier(*table.split("."))))
        public = await both_ways()
        readers = {a.role for a in scope.access if a.object == table} - kept
        assert {line.split(":")[0] for line in public if f":{table}:" in line} >= readers

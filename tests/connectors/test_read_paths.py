"""What who-saw-what asks of the database: every path that reads a dataset, and whose data it holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pausegate.connectors.postgres.access import PostgresAccess
from pausegate.connectors.postgres.catalog import ReadPath
from pausegate.models.runbook import DatasetSpec

from .conftest import Database

SQL = """
CREATE SCHEMA data;
CREATE SCHEMA app;
CREATE SCHEMA other;
CREATE TABLE data.events (id serial, person text, at timestamptz NOT NULL, what text);
CREATE TABLE data.notes (id serial, body text);                       -- no person column
CREATE TABLE other.unrelated (id serial, person text);
CREATE VIEW app.recent AS SELECT * FROM data.events WHERE at > now() - interval '1 day';
CREATE VIEW app.recent_people AS SELECT DISTINCT person FROM app.recent;   -- a view of a view
CREATE MATERIALIZED VIEW app.counts AS SELECT person, count(*) FROM data.events GROUP BY 1;
CREATE FUNCTION app.definer() RETURNS bigint LANGUAGE sql SECURITY DEFINER AS $$ SELECT count(*) FROM data.events $$;
CREATE FUNCTION app.invoker() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM app.recent $$;
CREATE FUNCTION app.dynamic(q text) RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS $$ BEGIN EXECUTE q; END $$;
CREATE FUNCTION app.unrelated() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM other.unrelated $$;
CREATE VIEW other.v AS SELECT * FROM other.unrelated;
INSERT INTO data.events (person, at, what) VALUES
  ('ann', now() - interval '2 hours', 'a'), ('bob', now() - interval '1 hour', 'b'),
  ('ann', now() - interval '1 hour', 'c'), (NULL, now(), 'd'), ('cy', now() + interval '1 hour', 'later');
INSERT INTO other.unrelated (person) VALUES ('zed');
"""

SPEC = DatasetSpec(name="events", connection="db", schema="data", tables=["events"])


async def test_views_matviews_and_routines_in_any_schema_are_read_paths(database: Database) -> None:
    with database.connect() as conn:
        conn.execute(SQL)  # type: ignore[arg-type]
    paths = {p.name: p for p in await PostgresAccess(database.dsn).read_paths(SPEC)}
    assert paths == {
        "app.recent": ReadPath("app.recent", "view", ("data.events",)),
        "app.recent_people": ReadPath("app.recent_people", "view", ("data.events",)),  # through app.recent
        "app.counts": ReadPath("app.counts", "matview", ("data.events",)),
        "app.definer": ReadPath("app.definer", "function", ("data.events",)),
        # an invoker's routine reads the table for whoever calls it (through the view it names)
        "app.invoker": ReadPath("app.invoker", "function", ("data.events",)),
        # builds its SQL at run time as an owner who can read the dataset: may reach it
        "app.dynamic": ReadPath("app.dynamic", "function", (), dynamic=True),
    }


async def test_whole_schema_read_paths_leave_the_schemas_own_relations_out(database: Database) -> None:
    with database.connect() as conn:
        conn.execute(SQL)  # type: ignore[arg-type]
    whole = DatasetSpec(name="data", connection="db", schema="data", tables=[])
    names = {p.name for p in await PostgresAccess(database.dsn).read_paths(whole)}
    assert {"app.recent", "app.counts", "app.definer", "app.invoker", "app.dynamic"} <= names
    assert not any(n.startswith(("data.", "other.")) for n in names)


async def test_data_subjects_are_the_people_in_rows_collected_before_the_end(database: Database) -> None:
    with database.connect() as conn:
        conn.execute(SQL)  # type: ignore[arg-type]
    access = PostgresAccess(database.dsn)
    tables, people = await access.data_subjects(SPEC, "person", "at", datetime.now(UTC) + timedelta(minutes=1))
    assert (tables, people) == (["data.events"], ["ann", "bob"])  # distinct, no NULL, not cy (collected later)
    # without a time column every row counts; tables without the column are left out
    whole = DatasetSpec(name="data", connection="db", schema="data", tables=[])
    assert await access.data_subjects(whole, "person", None, datetime.now(UTC)) == (["data.events"],
                                                                                    ["ann", "bob", "cy"])

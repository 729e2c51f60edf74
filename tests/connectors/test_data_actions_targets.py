"""What runs beside a data action on its target is refused before the action runs: a rule that copies
the values being destroyed, row security that hides rows from the administrative role, and logging
(auto_explain, pgaudit) that would write a pseudonym key's pads to the server's log."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from psycopg import sql

from pausegate.connectors.postgres.data_action_targets import parameter_loggers
from pausegate.connectors.postgres.data_actions import PostgresDataActions
from pausegate.errors import TargetRejectedError
from pausegate.models.data_actions import NullColumn, PseudonymiseColumn
from tests.connectors.data_actions_support import KEYS, TELEMETRY, seed_rows

if TYPE_CHECKING:
    from tests.connectors.conftest import Database

PAUSE = "employee-telemetry/2026-12-07T15:00:00Z"
NULL = NullColumn(dataset="telemetry", table="keystrokes", column="typed_content")
PSEUDO = PseudonymiseColumn(dataset="telemetry", table="keystrokes", column="typed_content", key_id="tel-2026")


def typed(db: Database) -> int:
    with db.connect() as conn:
        row = conn.execute("SELECT count(typed_content) FROM telemetry.keystrokes").fetchone()
    assert row is not None
    return int(str(row[0]))


class TestWhatRunsBesideAnAction:
    async def test_a_rule_and_row_security_on_the_target_are_refused_and_nothing_changes(
        self, database: Database
    ) -> None:
        seed_rows(database.dsn, 40)
        before = typed(database)
        admin_role = f"{database.prefix}admin"
        with database.connect() as conn:
            conn.execute("CREATE TABLE telemetry.copies (typed_content text)")
            conn.execute(
                "CREATE RULE keep_old AS ON UPDATE TO telemetry.keystrokes "
                "DO ALSO INSERT INTO telemetry.copies VALUES (OLD.typed_content)"
            )
        connector = PostgresDataActions(database.dsn, keys=KEYS)
        with pytest.raises(TargetRejectedError, match="rules that would rewrite or add to every change \\(keep_old\\)"):
            await connector.apply(PAUSE, TELEMETRY, 0, NULL)
        with database.connect() as conn:
            conn.execute("DROP RULE keep_old ON telemetry.keystrokes")
            conn.execute("DROP SCHEMA pausegate CASCADE")  # the ledger is to be the next role's own
            # an administrative role that is not a superuser and not the owner: policies apply to it
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(admin_role)))
            conn.execute(sql.SQL("GRANT ALL ON SCHEMA telemetry TO {}").format(sql.Identifier(admin_role)))
            conn.execute(sql.SQL("GRANT ALL ON ALL TABLES IN SCHEMA telemetry TO {}").format(
                sql.Identifier(admin_role)))
            conn.execute(sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(
                sql.Identifier(database.name), sql.Identifier(admin_role)))
            conn.execute("ALTER TABLE telemetry.keystrokes ENABLE ROW LEVEL SECURITY")
            conn.execute(sql.SQL("CREATE POLICY half ON telemetry.keystrokes TO {} USING (id % 2 = 0)").format(
                sql.Identifier(admin_role)))
        hidden = PostgresDataActions(database.dsn_as(admin_role), keys=KEYS)
        problems = await hidden.check(TELEMETRY, [NULL])
        assert problems == [f"data_actions[0] ({NULL.describe()}): row security applies to telemetry.keystrokes "
                            "for the administrative role: the action would change only the rows its policies show"]
        with pytest.raises(TargetRejectedError, match="row security applies"):
            await hidden.apply(PAUSE, TELEMETRY, 0, NULL)
        assert typed(database) == before

    async def test_a_pseudonymisation_is_refused_while_auto_explain_or_pgaudit_would_log_its_parameters(
        self, database: Database
    ) -> None:
        seed_rows(database.dsn, 40)
        before = typed(database)
        with database.connect() as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} SET auto_explain.log_min_duration = 0").format(
                sql.Identifier(database.name)))
            conn.execute(sql.SQL("ALTER DATABASE {} SET pgaudit.log_parameter = on").format(
                sql.Identifier(database.name)))
        connector = PostgresDataActions(database.dsn, keys=KEYS)
        with pytest.raises(TargetRejectedError) as refused:
            await connector.apply(PAUSE, TELEMETRY, 0, PSEUDO)
        assert "auto_explain logs statements with their parameters" in str(refused.value)
        assert "pgaudit logs statements with their parameters" in str(refused.value)
        assert typed(database) == before
        assert await connector.check(TELEMETRY, [NULL]) == []  # nothing bound there is a secret
        with database.connect() as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} SET auto_explain.log_parameter_max_length = 0").format(
                sql.Identifier(database.name)))
            conn.execute(sql.SQL("ALTER DATABASE {} SET pgaudit.log_parameter = off").format(
                sql.Identifier(database.name)))
        applied = await connector.apply(PAUSE, TELEMETRY, 0, PSEUDO)
        assert applied.applied_now and applied.rows_affected == before

    def test_which_settings_would_log_parameters(self) -> None:
        assert parameter_loggers(None, None, None) == []
        assert parameter_loggers("-1", None, "off") == []
        assert parameter_loggers("250ms", "0", None) == []
        assert len(parameter_loggers("0", "-1", "on")) == 2

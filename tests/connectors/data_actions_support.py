"""A telemetry table with rows for the data-action tests, and the subprocess that applies one action."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import sys
from datetime import UTC, datetime, timedelta

import psycopg

from pausegate.config import PseudonymKey
from pausegate.connectors.postgres.data_actions import PostgresDataActions
from pausegate.models.data_actions import DataAction
from pausegate.models.runbook import DatasetSpec
from pausegate.reference.example.seed import seed_example

KEY = "k" * 32
KEYS = {"tel-2026": PseudonymKey.model_validate({"secret": KEY})}
OTHER_KEY = {"tel-2026": PseudonymKey.model_validate({"secret": "o" * 32})}
TELEMETRY = DatasetSpec(
    name="telemetry",
    connection="telemetry-db",
    schema="telemetry",
    tables=["keystrokes", "mouse_events"],
    break_glass_roles=["security_breakglass"],
)
START = datetime(2026, 1, 1, tzinfo=UTC)
SUBJECTS = 7


def captured_at(row: int) -> datetime:
    """Row ``row`` (1-based) was captured ``row`` minutes after START."""
    return START + timedelta(minutes=row)


def seed_rows(dsn: str, rows: int) -> None:
    """The worked example's tables, and ``rows`` keystrokes: every fifth without typed content, the
    typed content repeating every 13 rows, employees employee_0000..employee_0006 in turn."""
    seed_example(dsn, employees=2)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO telemetry.keystrokes (agent_id, employee, captured_at, key_code, typed_content, window_title)
            SELECT 'agent-' || (g %% 10), 'employee_' || lpad((g %% %(subjects)s)::text, 4, '0'),
                   %(start)s::timestamptz + g * interval '1 minute', g %% 100,
                   CASE WHEN g %% 5 = 0 THEN NULL ELSE 'password' || (g %% 13) END, 'window ' || g
            FROM generate_series(1, %(rows)s) g
            """,
            {"rows": rows, "start": START, "subjects": SUBJECTS},
        )


def pseudonym(value: str, key: str = KEY) -> str:
    return hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()


def main() -> None:
    """Apply one action (argv: dsn, pause key, dataset JSON, action JSON) and print its result."""
    from pydantic import TypeAdapter

    dsn, pause_key, spec_json, action_json = sys.argv[1:5]
    spec = DatasetSpec.model_validate_json(spec_json)
    action: DataAction = TypeAdapter(DataAction).validate_json(action_json)  # type: ignore[arg-type]
    connector = PostgresDataActions(dsn, keys=KEYS, lock_timeout_ms=120_000)
    result = asyncio.run(connector.apply(pause_key, spec, 0, action))
    print(json.dumps(result.model_dump(mode="json")))


if __name__ == "__main__":
    main()

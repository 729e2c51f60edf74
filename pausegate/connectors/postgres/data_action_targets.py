"""What stands in the way of a data action on its target, read from the catalog: the table and its
columns, what runs beside a change to it (triggers, rules, row security), and what would log the
parameters a pseudonymisation binds (auto_explain, pgaudit). Used by ``data_actions`` in the
transaction that checks or runs the action."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from pausegate.config import PseudonymKey
from pausegate.models.data_actions import (
    PSEUDONYM_HEX_LENGTH,
    DataAction,
    DropColumn,
    NullColumn,
    PseudonymiseColumn,
    PurgeOlderThan,
    PurgeSubjects,
)

TIME_TYPES = frozenset({"timestamptz", "timestamp", "date"})
TEXT_TYPES = frozenset({"text", "varchar"})

COLUMNS_Q = """
SELECT c.oid, c.relkind::text, a.attname::text, t.typname::text, a.atttypmod, a.attnotnull,
       a.attgenerated <> '' AS generated,
       EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p'
               AND a.attnum = ANY (k.conkey)) AS in_primary_key,
       EXISTS (SELECT 1 FROM pg_constraint k WHERE k.contype = 'f'
               AND ((k.conrelid = c.oid AND a.attnum = ANY (k.conkey))
                 OR (k.confrelid = c.oid AND a.attnum = ANY (k.confkey)))) AS in_foreign_key,
       ARRAY(SELECT DISTINCT v.relnamespace::regnamespace::text || '.' || v.relname
             FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class
             WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
               AND d.refobjid = c.oid AND d.refobjsubid = a.attnum AND v.oid <> c.oid
             ORDER BY 1) AS used_by_views
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_type t ON t.oid = a.atttypid
WHERE n.nspname = %(schema)s AND c.relname = %(table)s
"""

# The resume's own write-time stamp (connectors/postgres/conditions.py) is not counted: it only sets a
# column to the server's clock, and its function belongs to this role, so nobody else can change it.
TRIGGERS_Q = (
    "SELECT t.tgname::text FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid"
    " WHERE t.tgrelid = %s AND NOT t.tgisinternal AND t.tgenabled <> 'D'"
    " AND NOT (t.tgname = 'zzzz_pausegate_written_at' AND p.proname = 'pausegate_stamp_written_at'"
    " AND NOT p.prosecdef AND pg_get_userbyid(p.proowner) = current_user) ORDER BY 1"
)
# Rules other than a view's own: an ON UPDATE/DELETE rule can copy the values elsewhere or do
# something else instead, as a trigger can.
RULES_Q = "SELECT rulename::text FROM pg_rewrite WHERE ev_class = %s AND rulename <> '_RETURN' ORDER BY 1"
# Whether row security filters what this role sees of the table: an UPDATE or DELETE would then
# change only the rows its policies show, and a count would see only those.
ROW_SECURITY_Q = "SELECT row_security_active(%s::oid::regclass)"
# What could write a statement's bound parameters (a pseudonym key's pads) to a log that
# ``log_parameter_max_length`` does not govern; NULL where the extension is not configured.
PARAMETER_LOGGERS_Q = """
SELECT current_setting('auto_explain.log_min_duration', true),
       current_setting('auto_explain.log_parameter_max_length', true),
       current_setting('pgaudit.log_parameter', true)
"""


@dataclass
class TargetColumn:
    type: str
    typmod: int
    not_null: bool
    generated: bool
    in_primary_key: bool
    in_foreign_key: bool
    used_by_views: list[str]


@dataclass
class TargetTable:
    oid: int
    kind: str
    columns: dict[str, TargetColumn] = field(default_factory=dict)
    triggers: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)
    row_security: bool = False


def parameter_loggers(
    min_duration: str | None, parameter_length: str | None, audit_parameters: str | None
) -> list[str]:
    """Which of auto_explain and pgaudit, as configured for this session, would log a statement's
    bound parameters (the settings as ``current_setting(..., true)`` reads them; None: unset)."""
    found: list[str] = []
    if min_duration is not None and min_duration.strip() not in ("", "-1") and (parameter_length or "").strip() != "0":
        found.append(
            f"auto_explain logs statements with their parameters (auto_explain.log_min_duration = {min_duration}, "
            f"auto_explain.log_parameter_max_length = {parameter_length if parameter_length is not None else 'unset'})"
        )
    if (audit_parameters or "").strip().lower() in ("on", "true", "yes", "1"):
        found.append("pgaudit logs statements with their parameters (pgaudit.log_parameter = on)")
    return found


async def load_table(conn: AsyncConnection[Any], schema: str, name: str) -> TargetTable | None:
    rows = await (await conn.execute(COLUMNS_Q, {"schema": schema, "table": name})).fetchall()
    if not rows:
        return None
    table = TargetTable(oid=rows[0][0], kind=rows[0][1])
    for _, _, col, typ, typmod, not_null, generated, pk, fk, views in rows:
        if col is not None:
            table.columns[col] = TargetColumn(typ, typmod, not_null, generated, pk, fk, list(views))
    table.triggers = [r[0] for r in await (await conn.execute(TRIGGERS_Q, (table.oid,))).fetchall()]
    table.rules = [r[0] for r in await (await conn.execute(RULES_Q, (table.oid,))).fetchall()]
    row = await (await conn.execute(ROW_SECURITY_Q, (table.oid,))).fetchone()
    table.row_security = bool(row and row[0])
    return table


def column_problems(
    action: DataAction,
    qualified: str,
    column: TargetColumn,
    table: TargetTable,
    now: datetime,
    keys: Mapping[str, PseudonymKey],
) -> list[str]:
    """What stands in the way of one action on one existing column."""
    name = f"{qualified}.{action.target_column}"
    problems: list[str] = []
    rewrites_rows = not isinstance(action, DropColumn)
    if rewrites_rows and table.triggers:
        # A trigger runs for every row changed and could copy the values being destroyed elsewhere.
        problems.append(f"{qualified} has triggers that would run on every row changed ({', '.join(table.triggers)})")
    if rewrites_rows and table.rules:
        problems.append(f"{qualified} has rules that would rewrite or add to every change ({', '.join(table.rules)})")
    if rewrites_rows and table.row_security:
        problems.append(
            f"row security applies to {qualified} for the administrative role: the action would change only the "
            "rows its policies show"
        )
    if isinstance(action, PurgeOlderThan):
        if column.type not in TIME_TYPES:
            problems.append(f"{name} is of type {column.type}, not a timestamp or date")
        if action.cutoff > now:
            problems.append(
                f"cutoff {action.cutoff.isoformat()} is in the future (the database's time is {now.isoformat()})"
            )
    elif isinstance(action, PurgeSubjects):
        if column.type not in TEXT_TYPES:
            problems.append(f"{name} is of type {column.type}; subjects are matched as text (text or varchar)")
    elif isinstance(action, NullColumn | DropColumn):
        if column.in_primary_key:
            problems.append(f"{name} is part of the primary key")
        if column.in_foreign_key:
            problems.append(f"{name} is part of a foreign key")
        if isinstance(action, NullColumn) and column.not_null:
            problems.append(f"{name} is NOT NULL (drop it or pseudonymise it instead)")
        if isinstance(action, NullColumn) and column.generated:
            problems.append(f"{name} is a generated column")
        if isinstance(action, DropColumn) and column.used_by_views:
            problems.append(f"{name} is used by {', '.join(column.used_by_views)}")
    elif isinstance(action, PseudonymiseColumn):
        if action.key_id not in keys:
            configured = ", ".join(sorted(keys)) or "none"
            problems.append(f"pseudonym key {action.key_id!r} is not configured (configured: {configured})")
        if column.type not in TEXT_TYPES:
            problems.append(f"{name} is of type {column.type}; pseudonyms are text (text or varchar)")
        elif column.type == "varchar" and 0 < column.typmod - 4 < PSEUDONYM_HEX_LENGTH:
            problems.append(
                f"{name} holds at most {column.typmod - 4} characters; a pseudonym has {PSEUDONYM_HEX_LENGTH}"
            )
        if column.in_foreign_key:
            problems.append(f"{name} is part of a foreign key")
        if column.generated:
            problems.append(f"{name} is a generated column")
    return problems



"""A plan's data actions written as lines in the console's plan form, one action a line.

    DATASET null TABLE COLUMN
    DATASET drop TABLE COLUMN
    DATASET pseudonymise TABLE COLUMN KEY_ID
    DATASET purge-before TABLE TIME_COLUMN CUTOFF          (ISO 8601 with a zone, e.g. 2026-01-01T00:00:00Z)
    DATASET purge-subjects TABLE SUBJECT_COLUMN SUBJECT[,SUBJECT…]

Lines are split on white space (no patterns); the models check every name. A subject with white space
or a comma in it cannot be written here: such a plan is proposed through the API or the CLI.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from pausegate.models.data_actions import (
    DataAction,
    DropColumn,
    NullColumn,
    PseudonymiseColumn,
    PurgeOlderThan,
    PurgeSubjects,
)

_ADAPTER: TypeAdapter[Any] = TypeAdapter(DataAction)
_FORMS = {
    "null": ("null_column", ["column"]),
    "drop": ("drop_column", ["column"]),
    "pseudonymise": ("pseudonymise_column", ["column", "key_id"]),
    "purge-before": ("purge_older_than", ["column", "cutoff"]),
    "purge-subjects": ("purge_subjects", ["subject_column", "subjects"]),
}
USAGE = "expected DATASET null|drop|pseudonymise|purge-before|purge-subjects TABLE COLUMN [ARGUMENT]"


def parse_data_action(line: str) -> DataAction:
    """One line as a data action; ``ValueError`` (or pydantic's ``ValidationError``) says what is wrong."""
    words = line.split()
    if len(words) < 4 or words[1] not in _FORMS:
        raise ValueError(USAGE)
    kind, fields = _FORMS[words[1]]
    if len(words) != 3 + len(fields):
        raise ValueError(f"{words[1]} takes DATASET {words[1]} TABLE {' '.join(f.upper() for f in fields)}")
    document: dict[str, Any] = {"kind": kind, "dataset": words[0], "table": words[2]}
    for name, value in zip(fields, words[3:], strict=True):
        document[name] = [s for s in value.split(",") if s] if name == "subjects" else value
    action: DataAction = _ADAPTER.validate_python(document)
    return action


def data_action_line(action: DataAction) -> str:
    """An action as ``parse_data_action`` reads it (to show the current plan in the form)."""
    head = f"{action.dataset} {{}} {action.table}"
    if isinstance(action, NullColumn):
        return f"{head.format('null')} {action.column}"
    if isinstance(action, DropColumn):
        return f"{head.format('drop')} {action.column}"
    if isinstance(action, PseudonymiseColumn):
        return f"{head.format('pseudonymise')} {action.column} {action.key_id}"
    if isinstance(action, PurgeOlderThan):
        return f"{head.format('purge-before')} {action.column} {action.cutoff.isoformat()}"
    if isinstance(action, PurgeSubjects):
        return f"{head.format('purge-subjects')} {action.subject_column} {','.join(action.subjects)}"
    raise ValueError(f"unknown data action kind {action.kind!r}")  # pragma: no cover

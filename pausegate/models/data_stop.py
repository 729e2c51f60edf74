"""When the data stopped flowing: the switch-off moment and the last row the dataset holds after it.

Times and counts only: which rows, and what they hold, stay in the dataset.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from pausegate.models.base import Model


class DataStopInput(Model):
    """Ask a dataset for rows collected after the program switch went off."""

    connection: str
    schema_name: str
    tables: list[str]
    written_at: str
    switch_off_at: datetime


class DataStop(Model):
    """The dataset's answer: rows collected after the switch went off (none, as it should be) and the last one."""

    switch_off_at: datetime = Field(description="When the fleet turned the program switch off.")
    checked_at: datetime = Field(description="When the dataset was asked.")
    rows_after: int = Field(ge=0, description="Rows in the program's tables collected after the switch went off.")
    last_row_at: datetime | None = Field(default=None, description="When the last of them was collected.")
    last_row_before: datetime | None = Field(
        default=None, description="When the last row collected before the switch went off was collected."
    )

    @property
    def stopped(self) -> bool:
        return self.rows_after == 0


def describe(stop: DataStop | None, switch_off_at: datetime) -> str:
    """The data stop in one line, for the status and the report."""
    off = f"switch off at {switch_off_at:%Y-%m-%d %H:%M:%S.%f}"[:-3] + " UTC"
    if stop is None:
        return f"{off}; rows after it not counted yet"
    if stop.stopped:
        last = (f"; last row {(stop.switch_off_at - stop.last_row_before).total_seconds():.2f} s before it"
                if stop.last_row_before else "")
        return f"{off}; no rows after the halt (checked {stop.checked_at:%H:%M:%S} UTC{last})"
    assert stop.last_row_at is not None
    late = (stop.last_row_at - stop.switch_off_at).total_seconds()
    return f"{off}; {stop.rows_after} rows after it, the last {late:.2f} s after the switch went off"

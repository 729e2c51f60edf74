"""The watch after a resume: its input, its state, and the one action people take on it.

Everything here may enter workflow history: names, counts, the first few ids, and the employee ids a
privacy officer names when consent is withdrawn (the same ids the fleet's listing carries).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from pausegate.models.base import Model, Mutable
from pausegate.models.conditions import ConditionsCheck
from pausegate.models.limits import MAX_NOTE
from pausegate.models.people import Actor
from pausegate.models.plan import ResumePlan
from pausegate.models.runbook import Runbook
from pausegate.models.signatures import KeyRing
from pausegate.models.state import Tuning

MAX_WITHDRAWN = 10_000  # employees whose consent a watch holds withdrawn (carried in history: ~200 KB at most)
WITHDRAWALS_KEPT = 100  # the latest withdrawals listed in state; the count carries the rest

# "unchecked": the period ended without one check that could run, so nothing says the conditions held.
WatchStatus = Literal["watching", "drifted", "ended", "unchecked", "superseded"]


class Withdrawal(Model):
    """An employee's consent withdrawn during the watch, and what halting their agents did."""

    employee: str
    by: str
    at: datetime
    reason: str
    agents_halted: int
    agents_pending: int
    written_back_at: datetime | None = Field(
        default=None, description="When the consent table recorded the withdrawal (the server's clock); None: "
        "not written back (a watch from before, or the write failed and people were told).")


class WatchState(Mutable):
    """What the watch of one resumed program knows (carried by continue-as-new, read by the status query)."""

    watch_id: str
    program: str
    pause_id: str = Field(description="The pause whose resume started this watch.")
    pause_run_id: str | None = Field(default=None, description="Its run (still open while it starts the watch).")
    status: WatchStatus = "watching"
    started_at: datetime
    ends_at: datetime
    interval_seconds: float
    checks: int = 0
    failed_checks: int = Field(default=0, description="Checks in a row, up to now, that could not run.")
    last_check_at: datetime | None = None
    last_check: ConditionsCheck | None = None
    drift: str | None = Field(default=None, description="What did not hold when the watch pulled the switch.")
    repaused: str | None = Field(default=None, description="The pause the watch started on drift (workflow run).")
    withdrawn: list[str] = Field(default_factory=list, max_length=MAX_WITHDRAWN)
    withdrawals: list[Withdrawal] = Field(default_factory=list, description=f"The latest {WITHDRAWALS_KEPT}.")
    withdrawals_total: int = 0
    run_count: int = 1


class WatchInput(Model):
    """Start (or continue) the watch of a resumed program."""

    runbook: Runbook
    plan: ResumePlan
    pause_id: str
    pause_key: str
    actions_key: str | None = None  # the resume attempt's data-action ledger key (PauseState.data_actions_key)
    switched_on_at: datetime = Field(description="Rows collected since are checked for dropped data types.")
    written_since: datetime | None = Field(default=None, description="The server's clock once it stamped "
                                           "writes to the collected tables: rows it stamped since are checked too.")
    tuning: Tuning = Field(default_factory=Tuning)
    state: WatchState | None = None
    keys: KeyRing | None = Field(default=None, description="The key ring the watched pause pinned: a pause the "
                                 "watch pulls counts signed approvals against it.")


class WithdrawConsentInput(Model):
    """An employee's consent is withdrawn: their agents are halted, and stay out of collection."""

    actor: Actor
    employee: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=MAX_NOTE)


class WatchReceipt(Model):
    """What an accepted watch update returns."""

    status: WatchStatus
    message: str


class PullSwitchInput(Model):
    """Start a new pause of the program, with the watch as its commander."""

    runbook: Runbook
    commander: Actor
    reason: str
    tuning: Tuning
    keys: KeyRing | None = None


class PullSwitchResult(Model):
    pause_id: str
    run_id: str | None = None
    started: bool = Field(description="False when a pause was already open (it is the one reported).")


class ProgramInput(Model):
    program: str


# --- the API's bodies (the CLI parses answers with these) ----------------------------


class WithdrawConsentRequest(Model):
    """An employee's consent is withdrawn."""

    employee: str = Field(min_length=1, max_length=200, description="As the fleet names the agents' employee.")
    reason: str = Field(min_length=1, max_length=MAX_NOTE)


class WatchReceiptOut(Model):
    """An accepted watch action."""

    program: str
    status: WatchStatus
    message: str
    actor: str = Field(description="The verified actor the action was recorded under.")

"""Where a pause's evidence lies in the store: every key is built here, nowhere else.

    <pause>/audit/<source>/<segment>       sealed bundles of one audit source (0: before the pause,
                                           1: from the pause until access was revoked)
    <pause>/scope/<dataset>                the exposure scope recorded before revoking
    <pause>/catalog/<dataset>              the raw catalog the revoke read, in its transaction, first
    <pause>/plans/<digest16>/<dataset>     a proposed plan's diff against that scope
    <pause>/exposure/who-saw-what          who read the data in the exposure window
    <pause>/exposure/data-subjects         whose records were readable then (owner-only: names people)
    <pause>/exposure/checkpoints/<records> where who-saw-what stood after that many records (a retry goes
                                           on from the one its heartbeat names; not evidence)
    <pause>/copies/found                   copies of the data made in the window, as found
    <pause>/copies/contained/<round>       the copies document: each copy as containment left it
    <pause>/copies/log/<source>/<round>    the log's lines that name a copy found (for copies of copies)
    <pause>/copies/who-saw-what            who read the data through a copy of it
    <pause>/copies/data-subjects/<round>   whose records the copies and the dataset hold (owner-only: names people)
    <pause>/origins/document               when and how each access path opened: statements, who ran them
    <pause>/origins/log/<source>           the log's lines that name a path of the scope (read for the origins)
    <pause>/timeline/<sequence:05d>        timeline entries archived before continue-as-new
    <pause>/report                         the final report
    <pause>/break-glass/<grant>            a break-glass grant's statements of its window, sealed
    <pause>/break-glass/reads/<grant>      who saw what over them: the holder's break-glass reads
    <pause>/resume/unconsented/<digest16>  agents left halted for lack of their employee's consent
    <pause>/resume/consent/<digest16>      the consent table at the resume, who wrote each row and when

``<pause>`` is the pause's evidence key, ``<program>/<started>-<suffix>``. These are the names the
store tries first: where something it did not write already lies at one of them, it writes under a
fresh name instead, recorded in the reference (``squatting``).
"""

from __future__ import annotations

from pausegate.models.evidence import URI_SCHEME

__all__ = [
    "URI_SCHEME",
    "audit_key",
    "break_glass_key",
    "break_glass_reads_key",
    "catalog_key",
    "consent_snapshot_key",
    "copies_contained_key",
    "copies_exposure_key",
    "copies_found_key",
    "copies_log_key",
    "copies_subjects_key",
    "data_subjects_key",
    "exposure_checkpoint_key",
    "exposure_key",
    "origins_key",
    "origins_log_key",
    "plan_diff_key",
    "report_key",
    "scope_key",
    "timeline_key",
    "unconsented_agents_key",
]


def audit_key(pause_key: str, source: str, segment: int) -> str:
    return f"{pause_key}/audit/{source}/{segment}"


def break_glass_key(pause_key: str, grant_id: str) -> str:
    return f"{pause_key}/break-glass/{grant_id}"


def break_glass_reads_key(pause_key: str, grant_id: str) -> str:
    return f"{pause_key}/break-glass/reads/{grant_id}"


def scope_key(pause_key: str, dataset: str) -> str:
    return f"{pause_key}/scope/{dataset}"


def catalog_key(pause_key: str, dataset: str) -> str:
    return f"{pause_key}/catalog/{dataset}"


def plan_diff_key(pause_key: str, plan_digest: str, dataset: str) -> str:
    return f"{pause_key}/plans/{plan_digest[:16]}/{dataset}"


def exposure_key(pause_key: str) -> str:
    return f"{pause_key}/exposure/who-saw-what"


CHECKPOINTS = "exposure/checkpoints"


def exposure_checkpoint_key(pause_key: str, records: int) -> str:
    return f"{pause_key}/{CHECKPOINTS}/{records:012d}"


def data_subjects_key(pause_key: str) -> str:
    return f"{pause_key}/exposure/data-subjects"


def origins_key(pause_key: str) -> str:
    return f"{pause_key}/origins/document"


def origins_log_key(pause_key: str, source: str) -> str:
    return f"{pause_key}/origins/log/{source}"


def copies_found_key(pause_key: str) -> str:
    return f"{pause_key}/copies/found"


def copies_contained_key(pause_key: str, round_: int) -> str:
    return f"{pause_key}/copies/contained/{round_}"


def copies_exposure_key(pause_key: str) -> str:
    return f"{pause_key}/copies/who-saw-what"


def copies_subjects_key(pause_key: str, round_: int) -> str:
    return f"{pause_key}/copies/data-subjects/{round_}"


def copies_log_key(pause_key: str, source: str, round_: int) -> str:
    return f"{pause_key}/copies/log/{source}/{round_}"


def timeline_key(pause_key: str, sequence: int) -> str:
    return f"{pause_key}/timeline/{sequence:05d}"


def report_key(pause_key: str) -> str:
    return f"{pause_key}/report"


def unconsented_agents_key(pause_key: str, digest: str) -> str:
    """Content-addressed: a retry, or a later halt finding the same agents, names the same document."""
    return f"{pause_key}/resume/unconsented/{digest[:16]}"


def consent_snapshot_key(pause_key: str, digest: str) -> str:
    """Content-addressed: a resume repeated over an unchanged consent table names the same document."""
    return f"{pause_key}/resume/consent/{digest[:16]}"

"""Whether a table's rows are the dataset's: a match of value digests against a bounded sample.

The dataset's fingerprint is the set of digests of its distinctive values (text of at least
``MIN_VALUE_CHARS`` characters, occurring in at most ``MAX_VALUE_REPEATS`` sampled rows: a status
word or a shared domain would match unrelated tables), taken over at most ``MAX_SAMPLED_ROWS``
rows of each table. Only digests leave the database: the rows themselves are never fetched.

A candidate table's sampled row matches when one of its values' digests is in the fingerprint.
When the fingerprint covers a fraction ``coverage`` of the dataset's rows, a full copy's rows match
at that rate; the confidence shown is the match rate over that coverage, at most 1: about the
share of the candidate's rows that are the dataset's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MIN_VALUE_CHARS = 8
MAX_VALUE_REPEATS = 2
MAX_SAMPLED_ROWS = 50_000  # of each dataset table, for the fingerprint
MAX_FINGERPRINT_VALUES = 500_000
CANDIDATE_ROWS = 256  # sampled of each candidate table
MIN_MATCHED_ROWS = 3
MIN_CONFIDENCE = 0.1


@dataclass(frozen=True)
class Fingerprint:
    digests: frozenset[str]
    rows_total: int  # rows of the dataset's tables (the catalog's estimate for large ones)
    rows_sampled: int

    @property
    def coverage(self) -> float:
        return 1.0 if self.rows_total <= 0 else min(1.0, self.rows_sampled / self.rows_total)


@dataclass(frozen=True)
class Match:
    sampled: int
    matched: int
    confidence: float

    @property
    def is_copy(self) -> bool:
        return self.matched >= MIN_MATCHED_ROWS and self.confidence >= MIN_CONFIDENCE


def fingerprint(digests: Iterable[str], *, rows_total: int, rows_sampled: int) -> Fingerprint:
    kept: set[str] = set()
    for d in digests:
        if len(kept) >= MAX_FINGERPRINT_VALUES:
            break
        kept.add(d)
    return Fingerprint(frozenset(kept), rows_total=rows_total, rows_sampled=rows_sampled)


def match(fp: Fingerprint, rows: Sequence[Sequence[str | None]]) -> Match:
    """How many of a candidate's sampled rows (each its values' digests) hold a fingerprinted value."""
    digests = fp.digests
    matched = sum(1 for row in rows if any(d is not None and d in digests for d in row))
    if not rows or fp.coverage <= 0:
        return Match(len(rows), matched, 0.0)
    return Match(len(rows), matched, round(min(1.0, matched / len(rows) / fp.coverage), 3))

"""Moved to ``pausegate.analysis.who_saw_what``: who saw what is an analysis of sealed evidence, not a connector."""

# shim: re-exported until importers move
from pausegate.analysis.who_saw_what import (
    BATCH,
    CACHE_ENTRIES,
    CACHE_STATEMENT_CHARS,
    MAX_LISTED_UNPARSED,
    Attribution,
    DatasetPaths,
    ObjectReads,
    UnparsedStatement,
    WhoSawWhat,
    WhoSawWhatBuilder,
    describe,
    read_scope,
)

__all__ = [
    "BATCH",
    "CACHE_ENTRIES",
    "CACHE_STATEMENT_CHARS",
    "MAX_LISTED_UNPARSED",
    "Attribution",
    "DatasetPaths",
    "ObjectReads",
    "UnparsedStatement",
    "WhoSawWhat",
    "WhoSawWhatBuilder",
    "describe",
    "read_scope",
]

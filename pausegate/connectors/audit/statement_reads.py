"""Moved to ``pausegate.analysis.statement_reads``: what a statement reads is an analysis, not a connector."""

# shim: re-exported until importers move
from pausegate.analysis.statement_reads import (
    DEFAULT_SEARCH_PATH,
    MAX_STATEMENT_BYTES,
    Exposer,
    How,
    Item,
    Needles,
    Read,
    ReadScope,
    StatementReads,
    analyse,
    analyse_each,
    analyse_each_off_loop,
    analyse_off_loop,
    needles,
    parser_text,
    prefilter,
    statement_kind,
)

__all__ = [
    "DEFAULT_SEARCH_PATH",
    "MAX_STATEMENT_BYTES",
    "Exposer",
    "How",
    "Item",
    "Needles",
    "Read",
    "ReadScope",
    "StatementReads",
    "analyse",
    "analyse_each",
    "analyse_each_off_loop",
    "analyse_off_loop",
    "needles",
    "parser_text",
    "prefilter",
    "statement_kind",
]

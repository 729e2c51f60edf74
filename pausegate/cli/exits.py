"""Exit codes of the API commands, and how a command fails.

Exit codes (scripts may rely on them):
    0  done
    1  refused by the API (401, 403, 409, 422, 413: the message says why)
    2  usage: bad arguments, no token configured, unreadable plan file
    3  not found: unknown program, pause or checklist item
    4  the API is unreachable or failing (5xx), or answered something this CLI cannot read
    5  ``pause --timeout`` ran out before the pause was contained (it goes on)
  130  ``pause`` interrupted with Ctrl-C while watching (the pause goes on)
"""

from __future__ import annotations

import json
from typing import NoReturn

import typer

from pausegate.cli.output import err

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_UNAVAILABLE = 4
EXIT_TIMEOUT = 5
EXIT_INTERRUPTED = 130


def fail(code: int, message: str, *, as_json: bool, error: str = "error") -> NoReturn:
    """Say why on stderr (and as JSON on stdout with ``--json``), then exit with ``code``."""
    if as_json:
        print(json.dumps({"error": error, "detail": message}))
    err.say(("error:", "red"), " ", message)
    raise typer.Exit(code)

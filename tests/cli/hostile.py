"""Text an attacker can get into the API's answers, and how the CLI must show it."""

from __future__ import annotations

import re

MARKUP = "[/oops] [link=https://evil.example]click[/link] [bold red]x[/]"
CLEAR = "\x1b[2J"
OSC8_LINK = "\x1b]8;"
_SGR = re.compile(r"\x1b\[[0-9;]*m")


def hostile(tag: str) -> str:
    """``tag`` followed by Rich markup and an ANSI clear-screen sequence."""
    return f"{tag} {MARKUP} {CLEAR}"


def shown(tag: str) -> str:
    """How ``hostile(tag)`` must appear: the markup literally, the escape as the four characters ``\\x1b``."""
    return f"{tag} {MARKUP} \\x1b[2J"


def without_styles(output: str) -> str:
    """``output`` without the SGR colour codes Rich adds on a terminal (any other escape remains)."""
    return _SGR.sub("", output)

"""Bounds every pause model shares: how long a note may be, how many ids a list holds."""

from __future__ import annotations

MAX_LISTED_IDS = 200  # ids listed in state; counts carry the rest
MAX_NOTE = 2000

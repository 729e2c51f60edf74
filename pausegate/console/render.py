"""Templates: Jinja2 with autoescaping on for every template, and the filters pages share.

Every string a page shows (names, notes, plan summaries, evidence URIs, runbook titles, refusal
reasons) is escaped when rendered; no template marks anything ``|safe``, and a test keeps it so.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from pausegate.approvals.describe import signed_by
from pausegate.models.state import TimelineEntry

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


def when(at: datetime | None) -> str:
    """A moment as people read it, in UTC (the timeline, reports and the CLI use UTC too)."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if at else "—"


def iso(at: datetime | None) -> str:
    """A moment for a ``<time datetime=…>`` attribute."""
    return at.astimezone(UTC).isoformat() if at else ""


def duration(seconds: float | None) -> str:
    """A span such as ``4 min 12 s`` or ``2 d 3 h`` (the two largest units)."""
    if seconds is None:
        return "—"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    total = int(seconds)
    units = [("d", 86400), ("h", 3600), ("min", 60), ("s", 1)]
    parts: list[str] = []
    for name, size in units:
        if total >= size or parts:
            parts.append(f"{total // size} {name}")
            total %= size
        if len(parts) == 2:
            break
    return " ".join(parts)


def span(start: datetime | None, end: datetime | None) -> float | None:
    """Seconds from ``start`` to ``end`` (None unless both are known)."""
    return (end - start).total_seconds() if start and end else None


def short(digest: str | None) -> str:
    """A digest's first 12 hex digits, for text (the whole digest stays in the title and the form)."""
    return f"{digest[:12]}…" if digest else "—"


class TimelineRows:
    """Timeline rows rendered once and kept by their content.

    A timeline row shows only its entry (absolute times, no viewer-dependent part; redaction empties
    ``detail``, which is part of the key), and the same entries are rendered again on every page view
    and live update of a pause: at 200 kept entries they were most of a pause page's render time. Each
    row is rendered by the autoescaped ``_timeline_row.html``; what is kept is that template's output,
    so nothing is marked safe that the template did not escape. Bounded: past ``limit`` rows the
    oldest go.
    """

    def __init__(self, env: Environment, limit: int = 20_000) -> None:
        self._env = env
        self._limit = limit
        self._rows: dict[tuple[object, ...], Markup] = {}

    def __call__(self, e: TimelineEntry) -> Markup:
        key = (e.at, e.actor, e.action, e.detail, e.accepted, e.count)
        row = self._rows.get(key)
        if row is None:
            row = Markup(self._env.get_template("_timeline_row.html").render(e=e))  # autoescaped output
            if len(self._rows) >= self._limit:
                del self._rows[next(iter(self._rows))]
            self._rows[key] = row
        return row

    def all(self, entries: list[TimelineEntry]) -> Markup:
        """The rows of ``entries``, in order (joined here rather than in a template loop: cheaper per row)."""
        return Markup("").join([self(e) for e in entries])

    def __len__(self) -> int:
        return len(self._rows)


def build_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,  # every template, whatever its name
        undefined=StrictUndefined,  # a misspelt variable fails the render instead of showing nothing
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=when, iso=iso, duration=duration, short=short, signed_by=signed_by)
    rows = TimelineRows(env)
    env.globals.update(span=span, timeline_rows=rows.all)
    return env


class Templates:
    """The console's templates, rendered to strings."""

    def __init__(self) -> None:
        self.env = build_environment()

    def render(self, name: str, **context: Any) -> str:
        return self.env.get_template(name).render(**context)

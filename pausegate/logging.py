"""structlog set-up: JSON in services, readable on a terminal; secrets redacted from every line.

Connection URLs may carry credentials (``https://user:pass@fleet/…``) or tokens in their query
(``?token=…``). ``redact`` removes both from any text; it runs on every log line and on every
error that leaves an activity, so they never reach logs, the timeline or workflow history.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog
from opentelemetry import trace

SECRET_QUERY_NAMES = frozenset({
    "token", "access_token", "api_key", "apikey", "key", "secret", "password", "passwd", "pwd", "sig",
    "signature", "auth", "authorization", "credential", "credentials", "x-amz-signature", "x-amz-credential",
})
REDACTED = "***"
_URL_END = frozenset(" \t\r\n\"'<>()[]{},;`")


def add_trace_context(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Add ``trace_id`` and ``span_id`` (W3C hex) of the span current where the line is logged, if any.

    A log line can so be found from its pause's trace and back; it lives here, not with the tracing
    set-up, because every layer logs and none may import the observability package above it.
    """
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event.setdefault("trace_id", format(context.trace_id, "032x"))
        event.setdefault("span_id", format(context.span_id, "016x"))
    return event


def redact(text: str) -> str:
    """``text`` with URL credentials and secret query values replaced by ``***``; one linear pass."""
    if "://" not in text:
        return text
    out: list[str] = []
    i = 0
    while (mark := text.find("://", i)) != -1:
        start = mark + 3
        end = start
        while end < len(text) and text[end] not in _URL_END:
            end += 1
        out.append(text[i:start])
        out.append(_redact_url_tail(text[start:end]))
        i = end
    out.append(text[i:])
    return "".join(out)


def _redact_url_tail(tail: str) -> str:
    """Everything after ``scheme://``: userinfo (up to the last @ before the path) and secret query values."""
    path_at = min((tail.find(c) for c in "/?#" if c in tail), default=len(tail))
    at = tail.rfind("@", 0, path_at)
    if at != -1:
        tail = f"{REDACTED}@{tail[at + 1:]}"
    query = tail.find("?")
    if query == -1:
        return tail
    fragment = tail.find("#", query)
    params = tail[query + 1:fragment if fragment != -1 else len(tail)]
    kept = []
    for pair in params.split("&"):
        name, eq, _ = pair.partition("=")
        kept.append(f"{name}={REDACTED}" if eq and name.lower() in SECRET_QUERY_NAMES else pair)
    return tail[:query + 1] + "&".join(kept) + (tail[fragment:] if fragment != -1 else "")


def _redact_event(_: Any, __: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
    return {k: redact(v) if isinstance(v, str) else v for k, v in event.items()}


def configure(*, json: bool | None = None, level: int = logging.INFO) -> None:
    """Configure structlog once per process; JSON unless writing to a terminal."""
    use_json = (not sys.stderr.isatty()) if json is None else json
    renderer: Any = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            add_trace_context,  # trace_id/span_id of the current span: a line leads to its pause's trace
            _redact_event,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str, **bound: Any) -> Any:
    """A logger bound to ``name`` and any context (pause id, actor)."""
    return structlog.get_logger(name).bind(**bound)

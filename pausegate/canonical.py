"""Canonical JSON: one byte string per value, and the digest every record of the project is taken over.

Sorted keys, no insignificant whitespace, UTF-8, no NaN: evidence documents, manifests, chained
logs, plans and approvals are all digested over these bytes. The ground floor: it imports nothing
of the project but its error tree.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import PurePath
from typing import Any

from pydantic import BaseModel

from pausegate.errors import EvidenceError


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Decimal | uuid.UUID | PurePath):
        return str(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset | tuple):
        return sorted(value) if isinstance(value, set | frozenset) else list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default
)


def canonical_json(document: Any) -> bytes:
    """One byte sequence per value: sorted keys, no insignificant whitespace, UTF-8, no NaN."""
    try:
        return _ENCODER.encode(document).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise EvidenceError(f"document is not canonical-JSON serialisable: {exc}") from exc


def sha256_hex(data: bytes) -> str:
    """The lower-case hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()

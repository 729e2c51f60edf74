"""A final report as the root of trust: the audit of a pause's evidence offline, from its report file.

The report lies in the evidence under its key (``layout.report_key``), or under the fresh name the
store gave it when something had been planted at that key (``squatting``): both are where its key says.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from pausegate.errors import EvidenceError
from pausegate.evidence.anchor import (
    REPORT_FINGERPRINT,
    AuditLine,
    AuditReport,
    audit_evidence,
    key_path,
    stored_digest,
)
from pausegate.evidence.files import DOCUMENT_SUFFIX, SIGNATURE_SUFFIX, validate_key
from pausegate.evidence.layout import report_key
from pausegate.evidence.squatting import is_alternate_of
from pausegate.evidence.verify import trusted_key, verify_document
from pausegate.models.state import PauseState


def read_report(path: Path) -> tuple[dict[str, Any], PauseState, bytes]:
    """A final report document: (document, the pause's state as recorded in it, its bytes)."""
    try:
        data = Path(path).read_bytes()
        document = json.loads(data)
        state = PauseState.model_validate(document["status"])
    except (OSError, ValueError, KeyError, TypeError, ValidationError) as exc:
        raise EvidenceError(f"{path}: not a final report: {exc}") from exc
    if not isinstance(document, dict):
        raise EvidenceError(f"{path}: not a final report")
    return document, state, data


def report_place(path: Path, state: PauseState) -> tuple[Path, str] | None:
    """(the evidence directory, the key) a report lies at, if it lies where its key, or a fresh name
    the store gave that key, says."""
    key = report_key(state.evidence_key)
    n = len(validate_key(key))
    actual = Path(path).absolute().parts
    if len(actual) <= n or not actual[-1].endswith(DOCUMENT_SUFFIX):
        return None
    candidate = "/".join((*actual[-n:-1], actual[-1].removesuffix(DOCUMENT_SUFFIX)))
    if not is_alternate_of(candidate, key):
        return None
    return Path(*actual[:-n]), candidate


def report_root(path: Path, state: PauseState) -> Path | None:
    """The evidence directory a report lies in, if it lies where its key says."""
    found = report_place(path, state)
    return None if found is None else found[0]


def _fresh_report(layout: Path, key: str, digest: str) -> Path | None:
    """The report with ``digest`` under a fresh name beside ``layout`` (the store moved it there)."""
    try:
        siblings = sorted(layout.parent.glob(f"{layout.name.removesuffix(DOCUMENT_SUFFIX)}.*{DOCUMENT_SUFFIX}"))
    except OSError:
        return None
    for sibling in siblings:
        name = key.rsplit("/", 1)[0] + "/" + sibling.name.removesuffix(DOCUMENT_SUFFIX)
        if is_alternate_of(name, key) and stored_digest(sibling, "document") == digest:
            return sibling
    return None


def audit_report_file(
    path: Path,
    *,
    root: Path | None = None,
    public_key: Ed25519PublicKey | Path | None = None,
    pinned: Collection[str] = (),
) -> AuditReport:
    """``audit_evidence`` offline, from a final report: the report is the root of trust (nothing
    checks it but its signature), so its digest is printed to compare with the pause's record.

    ``root`` defaults to the evidence directory the report lies in. The key beside the evidence
    is trusted if the report (or ``pinned``) names its fingerprint."""
    path = Path(path).absolute()
    document, state, data = read_report(path)
    digest = hashlib.sha256(data).hexdigest()
    located = report_place(path, state)
    if root is not None:
        base = Path(root).absolute()
    elif located is not None:
        base = located[0]
    else:
        raise EvidenceError(f"{path} does not lie where its key says in an evidence directory: name the directory")
    named = document.get(REPORT_FINGERPRINT)
    trusted = set(pinned) | ({named} if isinstance(named, str) else set())
    layout = key_path(base, report_key(state.evidence_key), DOCUMENT_SUFFIX)
    if located is not None and located[0] == base:
        in_place = key_path(base, located[1], DOCUMENT_SUFFIX)
    elif stored_digest(layout, "document") != digest:
        in_place = _fresh_report(layout, report_key(state.evidence_key), digest) or layout
    else:
        in_place = layout
    first = [
        AuditLine(
            status="NOTE",
            file=str(path),
            message=f"root of trust: this report, sha256 {digest}; nothing but its signature checks it, so compare "
            "that digest with the report digest the pause recorded (pausegate status --json: report.sha256)",
        )
    ]
    if pinned and isinstance(named, str) and named not in pinned:
        first.append(AuditLine(status="FAILED", file=str(path), message=(
            f"the report names signing key {named}, but configuration pins {', '.join(sorted(pinned))}")))
    if in_place != path:
        stored = stored_digest(in_place, "document")
        if stored is None:
            first.append(AuditLine(status="FAILED", file=str(in_place), message="report is missing from the evidence"))
        elif stored != digest:
            first.append(AuditLine(status="FAILED", file=str(in_place), message=(
                f"sha256 {stored}, but the report given has {digest}: not the same report")))
    allowed = [in_place, in_place.with_name(in_place.name + SIGNATURE_SUFFIX)]
    if in_place != layout and os.path.lexists(layout):
        # the store moves a write only when something it did not write lies at the name
        first.append(AuditLine(status="NOTE", file=str(layout), message=(
            "lies at the report's name but is not the report: planted before the store wrote there, "
            "which wrote the report under a fresh name")))
        allowed += [layout, layout.with_name(layout.name + SIGNATURE_SUFFIX)]
    key, _ = trusted_key(in_place, public_key, trusted)
    if key is not None:
        signed = in_place if in_place.exists() else path
        for p in verify_document(signed, key, root=base if signed == in_place else None).problems:
            first.append(AuditLine(status="FAILED", file=str(signed.parent / p.file), message=p.message))
    return audit_evidence(
        base,
        state,
        record=f"report {path} (sha256 {digest}, the root of trust)",
        public_key=public_key,
        pinned=trusted,
        allowed_extra=allowed,
        first_lines=first,
    )

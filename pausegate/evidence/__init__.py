"""Tamper-evident evidence: a write-once store, sealed bundles, offline verification, audit sources."""

from pausegate.evidence.store import LocalEvidenceStore
from pausegate.evidence.verify import Problem, VerificationReport, verify_bundle

__all__ = ["LocalEvidenceStore", "Problem", "VerificationReport", "verify_bundle"]

"""Evidence checked against the durable record: the digests a pause recorded, not only signatures.

A signature shows that the deployment wrote a file; it cannot tell one genuine file from
another (an earlier pause's bundle copied over this pause's, an older bundle left as the
newest). What tells them apart is the record: the pause's state holds the digest of every
bundle manifest and document it wrote (``anchors_of``), in Temporal while it runs and after
it closes, and in its final report. ``audit_evidence`` holds a pause's evidence directory
against that list: every recorded item present with its digest, each bundle verifying and its
chain ending at the recorded newest bundle under a signed head, and nothing in the directory
the record does not name, except what the record lists as planted there by someone else
(``EvidenceRef.plants``: the store wrote under a fresh name instead), said as a note while it is
exactly what was recorded.

The record is only as trustworthy as where it comes from: Temporal (read with the deployment's
configuration), or, offline, the final report, which is then the root of trust. Its own
digest is printed so that it can be compared with the one the pause recorded.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, Field, computed_field

from pausegate.errors import EvidenceError
from pausegate.evidence import signing_keys as keymod
from pausegate.evidence.bundle import (
    CHAIN_HEAD,
    CHAIN_LOCK,
    MANIFEST,
    head_signature_problem,
    parse_head,
    parse_manifest,
)
from pausegate.evidence.chain import parent_key
from pausegate.evidence.files import BUNDLE_SUFFIX, DOCUMENT_SUFFIX, SIGNATURE_SUFFIX, validate_key
from pausegate.evidence.layout import CHECKPOINTS
from pausegate.evidence.verify import (
    Problem,
    VerificationReport,
    trusted_key,
    verify_bundle,
    verify_document,
)
from pausegate.models.base import Model
from pausegate.models.evidence import SHA256_HEX, EvidenceRef, PlantedObject
from pausegate.models.state import PauseState

REPORT_FINGERPRINT = "evidence_signing_key_sha256"
"""The report document's field naming the signing key's fingerprint (``ReportInput``'s, beside ``status``)."""
PLANTS = "evidence_plants"
"""The report document's field listing what was planted at the pause's evidence names (absent if nothing was)."""

_LOCKS = frozenset({".lock", CHAIN_LOCK})
_HEX = frozenset("0123456789abcdef")


def _debris_of(name: str) -> str | None:
    """The name a temporary file of the store was for (``.<name>.tmp-<uuid hex>``, what publish_once
    and new_staging leave when a process dies mid-write), or None. File names are hostile input:
    string operations only."""
    stem, sep, tag = name.rpartition(".tmp-")
    if not sep or not stem.startswith(".") or len(stem) < 2 or len(tag) != 32 or not set(tag) <= _HEX:
        return None
    return stem[1:]


class Anchor(Model):
    """One item a pause recorded: where it lies in the store and the digest it must have."""

    key: str
    sha256: str = Field(pattern=SHA256_HEX)
    kind: Literal["bundle", "document"]
    what: str = Field(description="What it is, for people.")


class AuditLine(Model):
    """One item checked, or one problem, naming the file (relative to the evidence directory)."""

    status: Literal["OK", "FAILED", "NOTE"]
    file: str
    message: str


class AuditReport(Model):
    """The evidence of one pause held against its record (``ok`` only if no line FAILED)."""

    program: str
    incident_id: str
    pause_key: str
    evidence_dir: str
    record: str = Field(description="Where the digests came from: the workflow run, or the report (root of trust).")
    signing_key_sha256: str | None = None
    lines: list[AuditLine] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return all(line.status != "FAILED" for line in self.lines)

    @property
    def problems(self) -> list[AuditLine]:
        return [line for line in self.lines if line.status == "FAILED"]


def anchors_of(state: PauseState) -> list[Anchor]:
    """Every bundle and document the pause recorded, in the order recorded (a chain's bundles in
    sealing order, so the last of a chain is its newest)."""
    c = state.containment
    anchors = [
        Anchor(
            key=e.bundle.key,
            sha256=e.bundle.sha256,
            kind="bundle",
            what=f"audit records of {e.source}, {e.window_start:%Y-%m-%d %H:%M:%S} to {e.window_end:%Y-%m-%d %H:%M:%S}",
        )
        for e in c.evidence
    ]
    anchors += [
        Anchor(key=d.scope.key, sha256=d.scope.sha256, kind="document", what=f"exposure scope of {d.dataset}")
        for d in c.datasets
    ]
    anchors += [
        Anchor(key=d.snapshot.key, sha256=d.snapshot.sha256, kind="document",
               what=f"catalog of {d.dataset} as the revoke found it")
        for d in c.datasets
        if d.snapshot is not None
    ]
    if c.exposure is not None:
        anchors.append(
            Anchor(key=c.exposure.report.key, sha256=c.exposure.report.sha256, kind="document", what="who saw what")
        )
    if state.plan is not None:
        anchors += [
            Anchor(
                key=d.diff.key,
                sha256=d.diff.sha256,
                kind="document",
                what=f"plan {state.plan.plan_digest[:12]} against the scope of {d.dataset}",
            )
            for d in state.plan.diff
            if d.diff is not None
        ]
    anchors += [
        Anchor(key=ref.key, sha256=ref.sha256, kind="document", what=f"archived timeline, part {n}")
        for n, ref in enumerate(state.timeline_archived)
    ]
    if state.report is not None:
        anchors.append(Anchor(key=state.report.key, sha256=state.report.sha256, kind="document", what="final report"))
    # Whatever else the state records by reference is evidence too: a document added to the state
    # later must be checked (and must not show up as "not named by the record") without this list
    # having to learn of it.
    named = {(a.key, a.sha256) for a in anchors}
    for where, ref in recorded_references(state, ""):
        if (ref.key, ref.sha256) not in named:
            named.add((ref.key, ref.sha256))
            kind: Literal["bundle", "document"] = "bundle" if where.endswith(".bundle") else "document"
            anchors.append(Anchor(key=ref.key, sha256=ref.sha256, kind=kind, what=f"recorded as {where}"))
    return anchors


def plants_of(state: PauseState) -> dict[str, PlantedObject]:
    """What the pause recorded as planted at names its evidence was meant for, by name."""
    return {plant.name: plant for _, ref in recorded_references(state) for plant in ref.plants or ()}


def recorded_references(value: object, where: str = "") -> Iterator[tuple[str, EvidenceRef]]:
    """Every evidence reference inside ``value`` (a model, list or ref), with where it sits."""
    if isinstance(value, EvidenceRef):
        yield where, value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from recorded_references(getattr(value, name), f"{where}.{name}" if where else name)
    elif isinstance(value, list | tuple):
        for n, item in enumerate(value):
            yield from recorded_references(item, f"{where}[{n}]")


def key_path(root: Path, key: str, suffix: str) -> Path:
    parts = validate_key(key)
    return root.joinpath(*parts[:-1], parts[-1] + suffix)


def anchor_path(root: Path, anchor: Anchor) -> Path:
    return key_path(root, anchor.key, BUNDLE_SUFFIX if anchor.kind == "bundle" else DOCUMENT_SUFFIX)


def stored_digest(path: Path, kind: Literal["bundle", "document"]) -> str | None:
    """The digest a record would hold for what lies at ``path`` (None if nothing readable does)."""
    try:
        data = (path / MANIFEST if kind == "bundle" else path).read_bytes()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    return hashlib.sha256(data).hexdigest()


def recorded_fingerprints(root: Path, anchors: Iterable[Anchor]) -> set[str]:
    """Signing key fingerprints named in manifests whose digest the record holds: such a manifest
    is exactly the one sealed, so the key it names is the deployment's."""
    found: set[str] = set()
    for anchor in anchors:
        if anchor.kind != "bundle":
            continue
        try:
            data = (anchor_path(root, anchor) / MANIFEST).read_bytes()
        except (OSError, EvidenceError):
            continue
        if hashlib.sha256(data).hexdigest() == anchor.sha256:
            try:
                found.add(parse_manifest(data).signing_key_sha256)
            except EvidenceError:
                continue
    return found


class _Audit:
    def __init__(self, root: Path, state: PauseState, key: Ed25519PublicKey | None) -> None:
        self.root = root
        self.state = state
        self.key = key
        self.lines: list[AuditLine] = []
        self.plants = plants_of(state)

    def rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def add(self, status: Literal["OK", "FAILED", "NOTE"], path: Path, message: str) -> None:
        self.lines.append(AuditLine(status=status, file=self.rel(path), message=message))

    def problems_of(self, report: VerificationReport, base: Path) -> bool:
        for p in report.problems:
            where = p.file if Path(p.file).is_absolute() else self.rel(base / p.file)
            entry = f" [entry {p.entry}]" if p.entry is not None else ""
            self.lines.append(AuditLine(status="FAILED", file=where + entry, message=p.message))
        return bool(report.problems)

    def item(self, anchor: Anchor) -> None:
        path = anchor_path(self.root, anchor)
        digest = stored_digest(path, anchor.kind)
        if digest is None:
            gone = "bundle" if anchor.kind == "bundle" else "document"
            self.add(
                "FAILED", path, f"{gone} is missing (deleted): the pause recorded {anchor.what}, sha256 {anchor.sha256}"
            )
            return
        if digest != anchor.sha256:
            self.add(
                "FAILED",
                path / MANIFEST if anchor.kind == "bundle" else path,
                f"sha256 {digest}, but the pause recorded {anchor.sha256} for {anchor.what}: "
                "not the recorded file (replaced, or copied from elsewhere)",
            )
        if self.key is None:
            if digest == anchor.sha256:
                self.add("OK", path, f"{anchor.what}: sha256 equals the record (signatures not checked)")
            return
        if anchor.kind == "bundle":
            report = verify_bundle(path, self.key, root=self.root)
            detail = f", {report.records} records, {report.previous_bundles_checked} earlier bundle(s) linked"
        else:
            report = verify_document(path, self.key, root=self.root)
            detail = ""
        if not self.problems_of(report, path.parent) and digest == anchor.sha256:
            self.add("OK", path, f"{anchor.what}: sha256 equals the record{detail}")

    def chain(self, chain_key: str, recorded: list[Anchor]) -> None:
        """The head of one chain must be signed and name the newest bundle the pause recorded."""
        newest = recorded[-1]
        head_path = self.root.joinpath(*validate_key(chain_key)) / CHAIN_HEAD if chain_key else self.root / CHAIN_HEAD
        try:
            head = parse_head(head_path.read_bytes())
        except FileNotFoundError:
            self.add(
                "FAILED", head_path, f"chain head is missing (deleted): the newest recorded bundle is {newest.key!r}"
            )
            return
        except EvidenceError as exc:
            self.add("FAILED", head_path, str(exc))
            return
        failed = False
        if head.signature is None:
            self.add("NOTE", head_path, "chain head is unsigned (written before heads were signed); the record decides")
        elif self.key is not None and (why := head_signature_problem(self.key, head)) is not None:
            self.add("FAILED", head_path, why)
            failed = True
        if head.key != newest.key or head.manifest_sha256 != newest.sha256:
            self.add(
                "FAILED",
                head_path,
                f"chain head names {head.key!r} ({head.manifest_sha256[:12]}), but the newest bundle the pause "
                f"recorded for this chain is {newest.key!r} ({newest.sha256[:12]})",
            )
            failed = True
        unlike = [a.key for a in recorded if stored_digest(anchor_path(self.root, a), "bundle") != a.sha256]
        if unlike and not failed:
            self.add("FAILED", head_path, f"the chain under its head is not the recorded one: {', '.join(unlike)} "
                     "missing or replaced")
            failed = True
        if not failed:
            self.add("OK", head_path, f"chain of {len(recorded)} recorded bundle(s) ends at its head {newest.key!r}")

    def planted(self, path: Path) -> bool:
        """Whether ``path`` is something the record lists as planted (then said here, as a note while it
        is what was recorded)."""
        plant = self.plants.get(self.rel(path))
        if plant is None:
            return False
        what = f"planted before the store wrote there ({plant.kind}"
        if plant.kind == "file":
            what += f", {plant.size_bytes} bytes, sha256 {plant.sha256 or 'not computed: too large'}"
            digest = stored_digest(path, "document") if plant.sha256 is not None else None
            if plant.sha256 is not None and digest != plant.sha256:
                self.add("FAILED", path, f"{what}): changed since the pause recorded it (now sha256 {digest})")
                return True
        self.add("NOTE", path, f"{what}); the pause recorded it as a plant, its own evidence is elsewhere: not "
                 "evidence, kept for the investigation")
        return True

    def walk_roots(self, anchors: list[Anchor]) -> list[Path]:
        """The pause's directory, and the fresh directories its evidence took where something was planted
        at or above a directory of the pause."""
        pause = validate_key(self.state.evidence_key)
        roots = {self.root.joinpath(*pause)}
        for anchor in anchors:
            parts = validate_key(anchor.key)
            for n, (mine, theirs) in enumerate(zip(parts, pause, strict=False)):
                if mine != theirs:
                    roots.add(self.root.joinpath(*parts[: n + 1]))
                    break
        return sorted(roots)

    def extras(self, allowed_extra: Collection[Path], anchors: list[Anchor]) -> None:
        """Everything in the pause's directory the record does not name."""
        for pause_dir in self.walk_roots(anchors):
            if not pause_dir.is_dir() or pause_dir.is_symlink():
                if not self.planted(pause_dir):
                    self.add("FAILED", pause_dir, "the pause's evidence directory is missing")
                continue
            self._extras_under(pause_dir, allowed_extra, anchors)

    def _extras_under(self, pause_dir: Path, allowed_extra: Collection[Path], anchors: list[Anchor]) -> None:
        bundles = {anchor_path(self.root, a) for a in anchors if a.kind == "bundle"}
        documents = {anchor_path(self.root, a) for a in anchors if a.kind == "document"}
        allowed = documents | {d.with_name(d.name + SIGNATURE_SUFFIX) for d in documents} | set(allowed_extra)
        chains = {b.parent for b in bundles}
        # documents the pause wrote while working and no longer names: tolerated when signed for this pause
        working = {pause_dir / "plans": "diff of a plan the record no longer names (replaced or rejected)",
                   pause_dir / CHECKPOINTS: "checkpoint of the who-saw-what step (where a retry went on from)"}
        for dirpath, dirnames, filenames in os.walk(pause_dir):
            here = Path(dirpath)
            for name in sorted(dirnames):
                path = here / name
                if self.planted(path):
                    pass
                elif path.is_symlink():
                    self.add("FAILED", path, "symbolic link in the evidence (the store writes none)")
                elif path in bundles:
                    pass  # verify_bundle checked what lies inside
                elif (_debris_of(name) or "").endswith(BUNDLE_SUFFIX):
                    self.add("NOTE", path, "debris of an interrupted seal: not evidence, safe to remove")
                elif name.endswith(BUNDLE_SUFFIX):
                    self.add("FAILED", path, "bundle the record does not name (added, or copied from elsewhere)")
                else:
                    continue
                dirnames.remove(name)
            for name in sorted(filenames):
                path = here / name
                if path in allowed:
                    continue
                if name == CHAIN_HEAD and here in chains:
                    continue  # checked with its chain (the store replaces a head it did not sign)
                if self.planted(path):
                    continue
                if path.is_symlink():
                    self.add("FAILED", path, "symbolic link in the evidence (the store writes none)")
                elif name in _LOCKS and path.is_file() and path.stat().st_size == 0:
                    continue  # the store's lock files: empty, only ever locked
                elif _debris_of(name) is not None:
                    self.add("NOTE", path, "debris of an interrupted write: not evidence, safe to remove")
                elif (what := next((w for d, w in working.items() if here.is_relative_to(d)), None)) is not None \
                        and self._working_document(path, what):
                    continue
                else:
                    self.add("FAILED", path, "file the record does not name (added, or copied from elsewhere)")

    def _working_document(self, path: Path, what: str) -> bool:
        """A document the pause wrote while working that its record cannot name (a diff of a plan later
        replaced, a checkpoint of a step). Tolerated (as a note) only when its signature binds it to
        this very key, i.e. the deployment wrote it for this pause."""
        if path.name.endswith(DOCUMENT_SUFFIX + SIGNATURE_SUFFIX):
            document = path.with_name(path.name.removesuffix(SIGNATURE_SUFFIX))
            return document.exists()  # judged with its document
        if not path.name.endswith(DOCUMENT_SUFFIX) or self.key is None:
            return False
        report = verify_document(path, self.key, root=self.root)
        if report.problems or report.notes:
            return False
        self.add("NOTE", path, f"{what}: signed for this pause, but no recorded digest vouches for its content")
        return True


def audit_evidence(
    root: Path,
    state: PauseState,
    *,
    record: str,
    public_key: Ed25519PublicKey | Path | None = None,
    pinned: Collection[str] = (),
    allowed_extra: Collection[Path] = (),
    first_lines: Iterable[AuditLine] = (),
) -> AuditReport:
    """Hold the evidence of ``state``'s pause under ``root`` against the digests ``state`` recorded.

    ``record`` says where ``state`` came from. The public key is ``public_key`` if given, else the
    one beside the evidence if its fingerprint is pinned (``pinned``, or named by a manifest the
    record vouches for). Digests are compared even when no key can be trusted.
    """
    root = Path(root).absolute()
    anchors = anchors_of(state)
    trusted = set(pinned) | recorded_fingerprints(root, anchors)
    key, refused = trusted_key(root.joinpath(*validate_key(state.evidence_key)), public_key, trusted)
    audit = _Audit(root, state, key)
    audit.lines.extend(first_lines)
    if refused is not None:
        audit.add("FAILED", Path(refused.file), refused.message + " (digests are still compared; signatures are not)")
    by_key: dict[str, Anchor] = {}
    for anchor in anchors:
        first = by_key.setdefault(anchor.key, anchor)
        if first.sha256 != anchor.sha256:
            audit.add(
                "FAILED", anchor_path(root, anchor), f"the record names {anchor.key!r} twice, with different digests"
            )
        elif first is anchor:
            audit.item(anchor)
    chains: dict[str, list[Anchor]] = {}
    for anchor in by_key.values():
        if anchor.kind == "bundle":
            chains.setdefault(parent_key(anchor.key), []).append(anchor)
    for chain_key, recorded in chains.items():
        audit.chain(chain_key, recorded)
    audit.extras(allowed_extra, list(by_key.values()))
    # a problem found from two sides (a bundle and the chain walked through it) is said once
    lines = list(dict.fromkeys(audit.lines))
    return AuditReport(
        program=state.program,
        incident_id=state.incident_id,
        pause_key=state.evidence_key,
        evidence_dir=str(root),
        record=record,
        signing_key_sha256=keymod.fingerprint(key) if key is not None else None,
        lines=lines,
    )


def check_against_record(
    path: Path, report: VerificationReport, state: PauseState, root: Path, record: str
) -> list[Problem]:
    """What is wrong with one bundle or document (at ``path``, already verified against itself into
    ``report``) held against the record of its pause. Problems name files relative to the
    item's directory, as ``verify_bundle``'s do; an empty list means the record vouches for it."""
    root = Path(root).absolute()
    path = Path(path).absolute()
    base = path.parent
    problems: list[Problem] = []

    def problem(at: Path, message: str) -> None:
        try:
            name = at.relative_to(base).as_posix()
        except ValueError:
            name = str(at)
        problems.append(Problem(file=name, message=message))

    kind: Literal["bundle", "document"] = report.kind
    suffix = BUNDLE_SUFFIX if kind == "bundle" else DOCUMENT_SUFFIX
    try:
        key = path.relative_to(root).as_posix().removesuffix(suffix)
    except ValueError:
        problem(path, f"lies outside the evidence directory {root}: the record cannot vouch for it")
        return problems
    anchors = {a.key: a for a in anchors_of(state)}
    anchor = anchors.get(key)
    if anchor is None or anchor.kind != kind:
        problem(path, f"the {record} names no {kind} {key!r}: not evidence this pause recorded")
        return problems
    digest = stored_digest(path, kind)
    if digest is not None and digest != anchor.sha256:
        problem(
            path / MANIFEST if kind == "bundle" else path,
            f"sha256 {digest}, but the pause recorded {anchor.sha256} for {anchor.what}: "
            "not the recorded file (replaced, or copied from elsewhere)",
        )
    if kind == "document":
        return problems
    chain = [a for a in anchors.values() if a.kind == "bundle" and parent_key(a.key) == parent_key(key)]
    newest = chain[-1]
    newest_path = anchor_path(root, newest)
    if newest.key != key:
        newest_digest = stored_digest(newest_path, "bundle")
        if newest_digest is None:
            problem(
                newest_path, f"the newest bundle the pause recorded for this chain is missing (deleted): {newest.key!r}"
            )
        elif newest_digest != newest.sha256:
            problem(newest_path / MANIFEST, f"sha256 {newest_digest}, but the pause recorded {newest.sha256}: replaced")
    head_path = base / CHAIN_HEAD
    try:
        head = parse_head(head_path.read_bytes())
    except (FileNotFoundError, EvidenceError):
        problem(head_path, f"no readable chain head; the newest bundle the pause recorded is {newest.key!r}")
        return problems
    if head.key != newest.key or head.manifest_sha256 != newest.sha256:
        problem(
            head_path,
            f"chain head names {head.key!r} ({head.manifest_sha256[:12]}), but the newest bundle the pause recorded "
            f"for this chain is {newest.key!r} ({newest.sha256[:12]})",
        )
    return problems

"""``pausegate evidence``: verify sealed evidence, against itself and against the pause's record."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pausegate.cli.approvals_verify import verify_approvals
from pausegate.cli.output import clean
from pausegate.cli.trust_anchors import ConfigOpt, TrustAnchors, trust_anchors
from pausegate.errors import ConfigError, ConnectorError, EvidenceError
from pausegate.evidence.verify import (
    VerificationReport,
    unvouched_legacy,
    verified_records,
    verify_bundle,
    verify_evidence,
)
from pausegate.models.evidence import URI_SCHEME

if TYPE_CHECKING:
    from collections.abc import Callable

    from pydantic import BaseModel

    from pausegate.config import Settings
    from pausegate.evidence.anchor import AuditReport
    from pausegate.temporal.recorded_evidence import Record

app = typer.Typer(help="Verify sealed evidence bundles offline, and read their records.", no_args_is_help=True)

NO_RECORD = "no record consulted: "
EXIT_PROBLEMS = 1  # the evidence is not intact, or cannot be shown to be
# the sealed form of a database log line (pglog.sealed_record)
_LOG_LINE_RECORDS = ({"at", "file", "offset", "line"}, {"at", "file", "offset", "line_b64"})

BundleArg = Annotated[Path, typer.Argument(help="A bundle directory (<name>.bundle) or its manifest.json.")]
PublicKeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--public-key",
        help="Ed25519 public key (PEM), trusted as given. Default: evidence-signing-key.pub.pem found above the "
        "evidence, used only if its fingerprint is pinned (evidence.signing_key_fingerprint, or named by the "
        "pause's record or report).",
    ),
]


def _print_report(report: VerificationReport) -> None:
    # plain text, one problem per line, no markup: paths and "[entry N]" must print verbatim;
    # control characters (a hostile file name) are shown escaped, never sent to the terminal
    def out(text: str) -> None:
        typer.echo(clean(text))

    if report.ok:
        out(f"OK {report.bundle}")
        out(f"  key               {report.key}")
        if report.kind == "document":
            out(f"  sha256            {report.sha256}")
            out(f"  signed by key     {report.public_key_sha256}")
        else:
            out(f"  manifest sha256   {report.manifest_sha256}")
            out(f"  signed by key     {report.public_key_sha256}")
            out(f"  records           {report.records}")
            out(f"  chunks            {report.chunks} ({report.size_bytes} bytes)")
            out(f"  first / last      {report.first_at} / {report.last_at}")
            out(
                f"  chain             index {report.chain_index}, "
                f"{report.previous_bundles_checked} earlier bundle(s) linked and authenticated"
            )
    else:
        out(f"FAILED {report.bundle}: {len(report.problems)} problem(s)")
        for p in report.problems:
            where = f"{p.file}" + (f" [entry {p.entry}]" if p.entry is not None else "")
            out(f"  {where}: {p.message}")
    for note in report.notes:
        if not note.startswith(NO_RECORD):
            out(f"  note: {note}")
    if report.record is not None:
        out(f"  checked against   the {report.record}")
    else:
        why = next((n.removeprefix(NO_RECORD) for n in report.notes if n.startswith(NO_RECORD)), "")
        out(f"  checked against itself only: {NO_RECORD.rstrip(': ')}" + (f" ({why})" if why else ""))


def _anchors(config: Path | None, *, as_json: bool) -> TrustAnchors:
    """What the command trusts; a configuration named but not loading stops it (exit 2), never unpinned."""
    from pausegate.cli.exits import EXIT_USAGE, fail

    try:
        return trust_anchors(config)
    except ConfigError as exc:
        fail(EXIT_USAGE, str(exc), as_json=as_json)


def _show(report: BaseModel, anchors: TrustAnchors, *, as_json: bool, printed: Callable[[], None]) -> None:
    """The result, then what it was checked with (JSON: beside the report's own fields)."""
    if as_json:
        document = json.loads(report.model_dump_json())
        document["trust_anchors"] = anchors.as_json()
        typer.echo(json.dumps(document, indent=2, ensure_ascii=False))
        return
    printed()
    for line in anchors.lines():
        typer.echo(clean(line))


def _pins(settings: Settings | None) -> set[str]:
    pinned = settings.evidence.signing_key_fingerprint if settings is not None else None
    return {pinned} if pinned else set()


def _locate(settings: Settings, path: Path) -> tuple[Path, str, str] | str:
    """(evidence directory, program, pause key) of the evidence at ``path``, from where it lies (never
    from what it says about itself), or why it cannot be told."""
    from pausegate.evidence.verify import find_public_key
    from pausegate.temporal.recorded_evidence import pause_key_of

    path = path.absolute()
    roots = [settings.evidence.directory.absolute()]
    if (found := find_public_key(path)) is not None:
        roots.append(found.parent.absolute())
    for root in roots:
        if path.is_relative_to(root):
            where = pause_key_of(path.relative_to(root).as_posix())
            if where is None:
                return f"{path} is not where a pause keeps its evidence"
            return root, *where
    return f"{path} is not under the configured evidence directory {roots[0]}"


async def _fetch_record(settings: Settings, program: str, *, incident: str | None = None,
                        pause_key: str | None = None) -> Record:
    from pausegate.temporal.recorded_evidence import connect_briefly, find_record

    client = await connect_briefly(settings)
    return await find_record(client, program, incident_id=incident, evidence_key=pause_key)


def _unreachable(settings: Settings, exc: BaseException) -> str:
    return f"Temporal unreachable at {settings.temporal.address}: {str(exc) or type(exc).__name__}"


TargetArg = Annotated[
    str,
    typer.Argument(
        help="A bundle directory (<name>.bundle) or its manifest.json, a document (.json), or an evidence "
        "reference (evidence://<key>) read from the configured store, local or S3.",
        show_default=False,
    ),
]


@app.command(
    "verify",
    epilog="Exits 0 if the evidence is intact, 1 if anything was modified, deleted, added, reordered, truncated, "
    "substituted, signed by another key, or is not what the pause recorded, 2 on a usage or configuration error, "
    "4 if the configured bucket cannot be reached. "
    "With the deployment's configuration (--config, $PAUSEGATE_CONFIG or /etc/pausegate/config.toml; never the "
    "working directory's unless named; one that does not load exits 2) and Temporal "
    "reachable, it is also checked against the digests its pause recorded; otherwise the output says it was "
    "checked against itself only. An evidence:// reference is read from the configured store: from an S3 bucket, "
    "the version the pause recorded.",
)
def verify(
    bundle: TargetArg,
    public_key: PublicKeyOpt = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Check a bundle's signature, hash chain, every chunk, its chain to the signed head, and the pause's record."""
    anchors = _anchors(config, as_json=json_output)
    settings, why = anchors.settings, anchors.why
    if bundle.startswith(URI_SCHEME):
        report = _verify_stored(bundle.removeprefix(URI_SCHEME), settings, why, public_key, json_output)
    else:
        report = _verify_path(Path(bundle), settings, why, public_key)
    _show(report, anchors, as_json=json_output, printed=lambda: _print_report(report))
    raise typer.Exit(0 if report.ok else 1)


def _record_or_why(settings: Settings, program: str, pause_key: str) -> tuple[Record | None, str]:
    from temporalio.service import RPCError

    from pausegate.errors import PauseNotFound

    try:
        return asyncio.run(_fetch_record(settings, program, pause_key=pause_key)), ""
    except PauseNotFound as exc:
        return None, f"Temporal holds no record of it (closed longer ago than the namespace keeps histories?): {exc}"
    except (RuntimeError, TimeoutError, OSError, RPCError) as exc:
        return None, _unreachable(settings, exc)


def _verify_path(path: Path, settings: Settings | None, why: str, public_key: Path | None) -> VerificationReport:
    record: Record | None = None
    root: Path | None = None
    if settings is not None:
        located = _locate(settings, path)
        if isinstance(located, str):
            why = located
        else:
            root, program, pause_key = located
            record, why = _record_or_why(settings, program, pause_key)
    return _checked(path, root, record, why, _pins(settings), public_key)


def _checked(
    path: Path, root: Path | None, record: Record | None, why: str, pinned: set[str], public_key: Path | None
) -> VerificationReport:
    """The evidence at ``path`` verified against itself and, with ``record``, against the pause's record."""
    from pausegate.evidence.anchor import anchors_of, check_against_record, recorded_fingerprints

    if record is None or root is None:
        report = verify_evidence(path, public_key, pinned=pinned)
        # what only a record can vouch for is not taken on its own word
        return report.model_copy(update={"notes": [*report.notes, f"{NO_RECORD}{why}"],
                                         "problems": [*report.problems, *unvouched_legacy(report)]})
    pinned |= recorded_fingerprints(root, anchors_of(record.state))
    report = verify_evidence(path, public_key, pinned=pinned, root=root)
    against = check_against_record(path, report, record.state, root, record.describe())
    if against:
        against += unvouched_legacy(report)
    return report.model_copy(update={"problems": [*report.problems, *against], "record": record.describe()})


def _verify_stored(
    key: str, settings: Settings | None, why: str, public_key: Path | None, as_json: bool
) -> VerificationReport:
    """``evidence://<key>``: the evidence in the configured store (from a bucket: copied out at the
    version the pause recorded, with the rest of its chain)."""
    from pausegate.cli.exits import EXIT_UNAVAILABLE, EXIT_USAGE, fail
    from pausegate.evidence.chain import parent_key
    from pausegate.evidence.download import evidence_at_hand
    from pausegate.evidence.files import BUNDLE_SUFFIX, DOCUMENT_SUFFIX, validate_key
    from pausegate.temporal.recorded_evidence import pause_key_of

    if settings is None:
        fail(EXIT_USAGE, f"an evidence:// reference is read from the configured store: {why}", as_json=as_json)
    try:
        parts = validate_key(key)
    except EvidenceError as exc:
        fail(EXIT_USAGE, str(exc), as_json=as_json)
    located = pause_key_of(key)
    if located is None:
        fail(EXIT_USAGE, f"{key!r} is not where a pause keeps its evidence", as_json=as_json)
    record, why = _record_or_why(settings, *located)
    try:
        with evidence_at_hand(settings.evidence, parent_key(key), record.state if record else None) as here:
            base = here.root.joinpath(*parts)
            bundle = base.with_name(base.name + BUNDLE_SUFFIX)
            path = bundle if bundle.is_dir() else base.with_name(base.name + DOCUMENT_SUFFIX)
            report = _checked(path, here.root, record, why, _pins(settings), public_key)
            shown = here.location + path.relative_to(here.root).as_posix() if here.copied else str(path)
            return report.model_copy(update={"bundle": shown, "notes": [*here.notes, *report.notes]})
    except ConnectorError as exc:
        fail(EXIT_UNAVAILABLE, str(exc), as_json=as_json)
    except EvidenceError as exc:
        fail(EXIT_PROBLEMS, str(exc), as_json=as_json)


def _print_audit(report: AuditReport) -> None:
    def out(text: str) -> None:
        typer.echo(clean(text))

    out(f"audit of pause {report.pause_key} (program {report.program}, incident {report.incident_id})")
    out(f"  against the {report.record}")
    out(f"  evidence in {report.evidence_dir}, signing key {report.signing_key_sha256 or 'not trusted'}")
    for line in report.lines:
        separator = " " if line.status == "OK" else ": "
        out(f"{line.status:<6} {line.file}{separator}{line.message}")
    problems = len(report.problems)
    out("all evidence is what the pause recorded" if report.ok else f"{problems} problem(s)")


@app.command(
    "audit",
    epilog="Reads the pause's record from Temporal with the deployment's configuration; with --report, offline "
    "from a final report instead, which is then the root of trust (its digest is printed: compare it with the "
    "one the pause recorded). The configuration is --config, $PAUSEGATE_CONFIG or /etc/pausegate/config.toml, never "
    "the working directory's unless named. Exits 0 if every item is what the pause recorded, 1 on any problem, 2 "
    "on a usage or configuration error (a configuration that does not load), 3 if no such pause, 4 if Temporal is "
    "unreachable.",
)
def audit(
    program: Annotated[str, typer.Argument(help="The program whose pause to audit.")],
    incident: Annotated[
        str | None, typer.Option("--incident", help="An earlier pause's incident id (default: the latest pause).")
    ] = None,
    report_file: Annotated[
        Path | None,
        typer.Option("--report", help="A final report (report.json): check offline against the digests it lists."),
    ] = None,
    evidence_dir: Annotated[
        Path | None,
        typer.Option("--evidence-dir", help="The evidence directory (default: configured, or the report's)."),
    ] = None,
    public_key: PublicKeyOpt = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the audit as JSON.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Check a pause's whole evidence against the digests it recorded: all there, each unchanged, nothing extra."""
    from temporalio.service import RPCError

    from pausegate.cli.exits import EXIT_NOT_FOUND, EXIT_UNAVAILABLE, EXIT_USAGE, fail
    from pausegate.errors import PauseNotFound
    from pausegate.evidence.anchor import audit_evidence
    from pausegate.evidence.report_audit import audit_report_file, read_report

    anchors = _anchors(config, as_json=json_output)
    settings, why = anchors.settings, anchors.why
    pinned = _pins(settings)
    if report_file is not None:
        try:
            _, state, _ = read_report(report_file)
        except EvidenceError as exc:
            fail(EXIT_USAGE, str(exc), as_json=json_output)
        if state.program != program or (incident is not None and state.incident_id != incident):
            fail(EXIT_USAGE, f"the report is of {state.program}, incident {state.incident_id}", as_json=json_output)
        try:
            report = audit_report_file(report_file, root=evidence_dir, public_key=public_key, pinned=pinned)
        except EvidenceError as exc:
            fail(EXIT_USAGE, f"{exc} (--evidence-dir)", as_json=json_output)
    else:
        if settings is None:
            fail(EXIT_USAGE, f"{why}; without it, audit offline with --report", as_json=json_output)
        try:
            record = asyncio.run(_fetch_record(settings, program, incident=incident))
        except PauseNotFound as exc:
            fail(EXIT_NOT_FOUND, str(exc), as_json=json_output)
        except (RuntimeError, TimeoutError, OSError, RPCError) as exc:
            fail(EXIT_UNAVAILABLE, _unreachable(settings, exc), as_json=json_output)
        if evidence_dir is None and settings.evidence.store == "s3":
            report = _audit_bucket(settings, record, public_key, pinned, json_output)
        else:
            root = (evidence_dir or settings.evidence.directory).absolute()
            report = audit_evidence(
                root, record.state, record=record.describe(), public_key=public_key, pinned=pinned
            )
    _show(report, anchors, as_json=json_output, printed=lambda: _print_audit(report))
    raise typer.Exit(0 if report.ok else 1)


def _audit_bucket(
    settings: Settings, record: Record, public_key: Path | None, pinned: set[str], as_json: bool
) -> AuditReport:
    """The audit of a pause whose evidence is in the bucket: copied out at the versions the pause
    recorded, with what the bucket holds beyond them said first."""
    from pausegate.cli.exits import EXIT_UNAVAILABLE, fail
    from pausegate.evidence.anchor import AuditLine, audit_evidence
    from pausegate.evidence.download import evidence_at_hand

    try:
        with evidence_at_hand(settings.evidence, record.state.evidence_key, record.state) as here:
            notes = [note.partition(": ") for note in here.notes]
            report = audit_evidence(
                here.root,
                record.state,
                record=record.describe(),
                public_key=public_key,
                pinned=pinned,
                first_lines=[AuditLine(status="NOTE", file=where, message=what) for where, _, what in notes],
            )
            return report.model_copy(update={"evidence_dir": here.location})
    except ConnectorError as exc:
        fail(EXIT_UNAVAILABLE, str(exc), as_json=as_json)
    except EvidenceError as exc:
        fail(EXIT_PROBLEMS, str(exc), as_json=as_json)


@app.command(
    "download",
    epilog="Copies a pause's evidence out of the configured S3 bucket into DEST, laid out as the local store lays "
    "it out, each document and manifest at the version the pause recorded: `pausegate evidence verify` and "
    "`pausegate evidence audit --evidence-dir DEST` then work offline on the copy. Exits 2 on a usage or "
    "configuration error (no S3 store configured, DEST not empty), 3 if no such pause, 4 if Temporal or the "
    "bucket is unreachable, 1 if the bucket's public key is not the pinned one.",
)
def download(
    program: Annotated[str, typer.Argument(help="The program whose pause's evidence to copy.")],
    dest: Annotated[Path, typer.Argument(help="An empty or new directory.")],
    incident: Annotated[
        str | None, typer.Option("--incident", help="An earlier pause's incident id (default: the latest pause).")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Copy a pause's evidence out of the bucket, at the versions the pause recorded, for offline checks."""
    from temporalio.service import RPCError

    from pausegate.cli.exits import EXIT_NOT_FOUND, EXIT_UNAVAILABLE, EXIT_USAGE, fail
    from pausegate.errors import PauseNotFound
    from pausegate.evidence.download import recorded_digests, recorded_versions
    from pausegate.evidence.open_store import open_s3_store

    anchors = _anchors(config, as_json=False)
    settings, why = anchors.settings, anchors.why
    if settings is None:
        fail(EXIT_USAGE, why, as_json=False)
    if settings.evidence.store != "s3":
        where = settings.evidence.directory
        fail(EXIT_USAGE, f"the evidence is in the directory {where}, not a bucket; copy it as files", as_json=False)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        fail(EXIT_USAGE, f"{dest} exists and is not an empty directory", as_json=False)
    try:
        record = asyncio.run(_fetch_record(settings, program, incident=incident))
    except PauseNotFound as exc:
        fail(EXIT_NOT_FOUND, str(exc), as_json=False)
    except (RuntimeError, TimeoutError, OSError, RPCError) as exc:
        fail(EXIT_UNAVAILABLE, _unreachable(settings, exc), as_json=False)
    try:
        store = open_s3_store(settings.evidence, read_only=True)
        try:
            copy = store.download(
                record.state.evidence_key,
                dest,
                recorded=recorded_versions(record.state),
                digests=recorded_digests(record.state),
            )
        finally:
            store.close()
    except ConnectorError as exc:
        fail(EXIT_UNAVAILABLE, str(exc), as_json=False)
    except EvidenceError as exc:
        fail(EXIT_PROBLEMS, str(exc), as_json=False)
    for note in copy.notes:
        typer.echo(clean(f"note: {note}"))
    typer.echo(clean(f"{copy.objects} object(s) of pause {record.state.evidence_key} from {store.location} in {dest}"))


@app.command(
    "records",
    epilog="Chunks are stored compressed; this is how to read them. A database log bundle (postgres_log) prints "
    "the server's own log lines, byte for byte as it wrote them; --sealed prints the sealed records instead "
    "(each line with its log file and offset). Exits 1, printing the problems to stderr and no record, if the "
    "bundle does not verify or changes while it is read.",
)
def records(
    bundle: BundleArg,
    public_key: PublicKeyOpt = None,
    sealed: Annotated[bool, typer.Option("--sealed", help="Print the sealed JSON records as they are.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Print a bundle's records in sealed order, only if it verifies: a database log's own lines, others as JSON."""
    from pausegate.analysis.pglog_lines import original_line

    # the output is the records alone, byte for byte: the anchors are not printed here
    report = verify_bundle(bundle, public_key, pinned=_pins(_anchors(config, as_json=False).settings))
    if not report.ok:
        for p in report.problems:
            where = f"{p.file}" + (f" [entry {p.entry}]" if p.entry is not None else "")
            typer.echo(f"{where}: {p.message}", err=True)
        raise typer.Exit(1)
    out = typer.get_binary_stream("stdout")
    try:
        for line in verified_records(bundle, report):
            if sealed or not line.startswith(b'{"at":'):
                out.write(line)
                continue
            # canonical JSON sorts keys: a log line's record is {"at", "file", "line"/"line_b64", "offset"}
            record = json.loads(line)
            raw = original_line(record) if set(record) in _LOG_LINE_RECORDS else None
            out.write(line if raw is None else raw + b"\n")
    except EvidenceError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    out.flush()


app.command("verify-approvals")(verify_approvals)

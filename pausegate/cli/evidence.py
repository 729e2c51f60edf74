"""``pausegate evidence``: verify sealed evidence offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pausegate.errors import EvidenceError
from pausegate.evidence.verify import VerificationReport, verified_records, verify_bundle

app = typer.Typer(help="Verify sealed evidence bundles offline, and read their records.", no_args_is_help=True)

BundleArg = Annotated[Path, typer.Argument(help="A bundle directory (<name>.bundle) or its manifest.json.")]
PublicKeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--public-key",
        help="Ed25519 public key (PEM). Default: evidence-signing-key.pub.pem found above the bundle; "
        "compare its fingerprint with the published one.",
    ),
]


def _print_report(report: VerificationReport) -> None:
    # plain text, one problem per line, no markup: paths and "[entry N]" must print verbatim
    out = typer.echo
    if report.ok:
        out(f"OK {report.bundle}")
        out(f"  key               {report.key}")
        out(f"  manifest sha256   {report.manifest_sha256}")
        out(f"  signed by key     {report.public_key_sha256}")
        out(f"  records           {report.records}")
        out(f"  chunks            {report.chunks} ({report.size_bytes} bytes)")
        out(f"  first / last      {report.first_at} / {report.last_at}")
        out(
            f"  chain             index {report.chain_index}, "
            f"{report.previous_bundles_checked} earlier bundle(s) linked and authenticated"
        )
        return
    out(f"FAILED {report.bundle}: {len(report.problems)} problem(s)")
    for p in report.problems:
        where = f"{p.file}" + (f" [entry {p.entry}]" if p.entry is not None else "")
        out(f"  {where}: {p.message}")


@app.command(
    "verify",
    epilog="Exits 0 if the bundle is intact, 1 if anything was modified, deleted, added, reordered, truncated, "
    "substituted or signed by another key.",
)
def verify(
    bundle: BundleArg,
    public_key: PublicKeyOpt = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check a bundle's signature, hash chain, every chunk and its link to earlier bundles."""
    report = verify_bundle(bundle, public_key)
    if json_output:
        typer.echo(report.model_dump_json(indent=2))
    else:
        _print_report(report)
    raise typer.Exit(0 if report.ok else 1)


@app.command(
    "records",
    epilog="Chunks are stored compressed; this is how to read them. Exits 1, printing the problems to stderr "
    "and no record, if the bundle does not verify or changes while it is read.",
)
def records(bundle: BundleArg, public_key: PublicKeyOpt = None) -> None:
    """Print a bundle's audit records as JSON lines, in sealed order, only if the bundle verifies."""
    report = verify_bundle(bundle, public_key)
    if not report.ok:
        for p in report.problems:
            where = f"{p.file}" + (f" [entry {p.entry}]" if p.entry is not None else "")
            typer.echo(f"{where}: {p.message}", err=True)
        raise typer.Exit(1)
    out = typer.get_binary_stream("stdout")
    try:
        for line in verified_records(bundle, report):
            out.write(line)
    except EvidenceError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    out.flush()

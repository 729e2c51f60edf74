"""Commands for commanders, reviewers and approvers: a client of the HTTP API.

Exit codes (scripts may rely on them):
    0  done
    1  refused by the API (401, 403, 409, 422, 413: the message says why)
    2  usage: bad arguments, no token configured, unreadable plan file
    3  not found: unknown program, pause or checklist item
    4  the API is unreachable or failing (5xx)
    5  ``pause --timeout`` ran out before the pause was contained (it goes on)
  130  ``pause`` interrupted with Ctrl-C while watching (the pause goes on)
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
import yaml
from rich.console import Console
from rich.live import Live
from rich.table import Table

from pausegate.cli.api_client import ApiError, ApiUnreachable, PausegateClient, load_client_config
from pausegate.errors import ConfigError

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_UNAVAILABLE, EXIT_TIMEOUT, EXIT_INTERRUPTED = (
    0,
    1,
    2,
    3,
    4,
    5,
    130,
)
CONTAINED_STATES = {"UNDER_REVIEW", "AWAITING_APPROVAL", "RESUMING", "RESUMED", "DECOMMISSIONED"}

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
ProgramArg = Annotated[str, typer.Argument(help="The program's id (as in its runbook).")]


def _fail(code: int, message: str, *, as_json: bool, error: str = "error") -> NoReturn:
    if as_json:
        print(json.dumps({"error": error, "detail": message}))
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


@contextmanager
def _client(as_json: bool) -> Iterator[PausegateClient]:
    """A connected client, with every failure turned into a message and an exit code."""
    try:
        url, token = load_client_config()
    except ConfigError as exc:
        _fail(EXIT_USAGE, str(exc), as_json=as_json, error="config")
    client = PausegateClient(url, token)
    try:
        yield client
    except ApiError as exc:
        detail = exc.detail + ("".join(f"\n  {p}" for p in exc.problems) if exc.problems else "")
        if exc.status == 404:
            _fail(EXIT_NOT_FOUND, detail, as_json=as_json, error=exc.code)
        if exc.status >= 500:
            _fail(EXIT_UNAVAILABLE, f"the API failed ({exc.status}): {detail}", as_json=as_json, error=exc.code)
        _fail(EXIT_REFUSED, f"refused ({exc.status} {exc.code}): {detail}", as_json=as_json, error=exc.code)
    except ApiUnreachable as exc:
        _fail(EXIT_UNAVAILABLE, str(exc), as_json=as_json, error="unreachable")
    finally:
        client.close()


def _emit(data: Any, as_json: bool, human: Callable[[], None]) -> None:
    if as_json:
        print(json.dumps(data, indent=2, default=str))
    else:
        human()


def _receipt(receipt: dict[str, Any]) -> None:
    line = f"[green]ok[/green] {receipt['message']} — pause is {receipt['state']} (as {receipt['actor']})"
    if receipt.get("digest"):
        line += f"\n   approvals must name digest {receipt['digest']}"
    out.print(line)


def progress_line(view: dict[str, Any]) -> str:
    """One line of containment progress, as people read it."""
    p = view["progress"]
    evidence = f"evidence {p['evidence_bundles']} bundles sealed"
    if p["evidence_pending"]:
        evidence += f" (pending: {', '.join(p['evidence_pending'])})"
    return (
        f"{view['state']}: agents halted {p['agents_halted']} of {p['agents_total']}"
        f" ({p['agents_unconfirmed']} unconfirmed, {p['agents_waived']} waived)"
        f" · datasets revoked and verified {p['datasets_verified']} of {p['datasets_total']}"
        f" ({p['grants_recorded']} grants recorded)"
        f" · {evidence}"
    )


def _progress_table(view: dict[str, Any]) -> Table:
    p = view["progress"]
    table = Table(title=f"Pause of {view['program']} — {view['state']}", show_header=False)
    table.add_row(
        "Agents halted",
        f"{p['agents_halted']} of {p['agents_total']}"
        + (f" ({p['agents_unconfirmed']} unconfirmed)" if p["agents_unconfirmed"] else "")
        + (" ✓" if p["agents_confirmed"] else ""),
    )
    table.add_row("Program switch", "off" if p["switch_off"] else "ON")
    table.add_row(
        "Access revoked and verified",
        f"datasets {p['datasets_verified']} of {p['datasets_total']} ({p['grants_recorded']} grants recorded)"
        + (" ✓" if p["access_revoked"] else ""),
    )
    table.add_row(
        "Evidence sealed",
        f"{p['evidence_bundles']} bundles"
        + (f", pending {', '.join(p['evidence_pending'])}" if p["evidence_pending"] else " ✓"),
    )
    for e in p["errors"][-3:]:
        table.add_row("[yellow]retrying[/yellow]", e)
    return table


def _status_tables(view: dict[str, Any]) -> None:
    head = Table(show_header=False, title=f"{view['program']} — {view['state']}")
    for key in ("incident_id", "reason", "severity", "commander", "started_at"):
        head.add_row(key.replace("_", " "), str(view[key]))
    if view.get("approval_digest"):
        head.add_row("approve digest", view["approval_digest"])
    head.add_row(
        "approvals",
        f"{len(view['approvals'])} of {view['quorum']}: "
        + (", ".join(f"{a['actor_id']} ({a['role']})" for a in view["approvals"]) or "none"),
    )
    out.print(head)
    out.print(_progress_table(view))
    _checklist_table(view["checklist"])
    if view.get("plan"):
        plan = view["plan"]
        out.print(
            f"Plan {plan['plan_digest'][:12]} by {plan['proposed_by']}: agents {plan['plan']['agents']['mode']}, "
            f"{len(plan['plan']['grants'])} grants. {plan['plan'].get('summary', '')}"
        )
    timeline = Table(title="Timeline (latest 15)")
    for col in ("at", "actor", "action", "detail"):
        timeline.add_column(col)
    for e in view["timeline"][-15:]:
        action = e["action"] if e["accepted"] else f"[red]{e['action']}[/red]"
        timeline.add_row(str(e["at"])[:19], e["actor"], action, e["detail"][:100])
    out.print(timeline)


def _checklist_table(items: list[dict[str, Any]]) -> None:
    table = Table(title="Checklist")
    for col in ("item", "title", "roles", "needs", "evidence", "done by"):
        table.add_column(col)
    for i in items:
        table.add_row(
            i["id"],
            i["title"],
            ", ".join(i["roles"]),
            ", ".join(i["depends_on"]) or "—",
            ", ".join(i["evidence_required"]) or "—",
            f"[green]{i['completed_by']}[/green]" if i.get("completed_by") else "[yellow]open[/yellow]",
        )
    out.print(table)


_SHA = re.compile(r"^[0-9a-f]{64}$")


def parse_evidence(values: list[str]) -> list[dict[str, Any]]:
    """``NAME=URI`` or ``NAME=URI@SHA256`` (the digest is recognised only as 64 hex digits)."""
    attached = []
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise typer.BadParameter(f"{value!r}: expected NAME=URI or NAME=URI@SHA256")
        uri, at, digest = rest.rpartition("@")
        item: dict[str, Any] = {"name": name, "uri": rest}
        if at and _SHA.match(digest):
            item = {"name": name, "uri": uri, "sha256": digest}
        attached.append(item)
    return attached


def register(app: typer.Typer) -> None:
    """Add the operator commands to the ``pausegate`` command."""

    @app.command("pause")
    def pause(
        program: ProgramArg,
        reason: Annotated[str, typer.Option(help="Why the program is paused (goes into the timeline).")],
        severity: Annotated[str, typer.Option(help="low, medium, high or critical.")] = "high",
        wait: Annotated[bool, typer.Option(help="Watch containment until contained.")] = True,
        interval: Annotated[float, typer.Option(help="Seconds between progress checks.", min=0.05)] = 0.5,
        timeout: Annotated[float | None, typer.Option(help="Stop watching after this many seconds (exit 5).")] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Pull the kill switch on PROGRAM and show containment until every target is confirmed."""
        with _client(as_json) as client:
            answer = client.trigger(program, reason, severity)
            view = answer["pause"]
            if not as_json:
                verb = "paused" if answer["started"] else "already paused (returning the open pause)"
                out.print(
                    f"[bold]{program}[/bold] {verb}: incident {view['incident_id']}, commander {view['commander']}"
                )
            if wait:
                view = _watch(client, program, view, interval=interval, timeout=timeout, as_json=as_json)
            _emit({"started": answer["started"], "pause": view}, as_json, lambda: None)

    def _watch(
        client: PausegateClient,
        program: str,
        view: dict[str, Any],
        *,
        interval: float,
        timeout: float | None,
        as_json: bool,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout if timeout else None
        live = Live(_progress_table(view), console=out, auto_refresh=False) if out.is_terminal and not as_json else None
        last = ""
        try:
            if live:
                live.start()
            while True:
                line = progress_line(view)
                if live:
                    live.update(_progress_table(view), refresh=True)
                elif line != last:
                    # Not a terminal: one line per change, so logs and scripts see the progress too.
                    (err if as_json else out).print(line)
                last = line
                if view["state"] in CONTAINED_STATES:
                    if not as_json:
                        out.print(
                            f"[green]contained[/green] at {view['progress']['contained_at']}; "
                            f"the pause is {view['state']}"
                        )
                    return view
                if deadline and time.monotonic() > deadline:
                    _fail(
                        EXIT_TIMEOUT,
                        "still containing; the pause goes on (see pausegate status)",
                        as_json=as_json,
                        error="timeout",
                    )
                time.sleep(interval)
                view = client.status(program)
        except KeyboardInterrupt:
            err.print("stopped watching; the pause goes on (see pausegate status)")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        finally:
            if live:
                live.stop()

    @app.command("pauses")
    def pauses(as_json: JsonOpt = False) -> None:
        """List the latest pause of every program."""
        with _client(as_json) as client:
            rows = client.pauses()

            def human() -> None:
                table = Table(title="Pauses")
                for col in ("program", "state", "severity", "commander", "started", "agents halted"):
                    table.add_column(col)
                for r in rows:
                    p = r["progress"]
                    table.add_row(
                        r["program"],
                        r["state"],
                        r["severity"],
                        r["commander"],
                        str(r["started_at"])[:19],
                        f"{p['agents_halted']}/{p['agents_total']}",
                    )
                out.print(table)

            _emit(rows, as_json, human)

    @app.command("refusals")
    def refusals(
        program: Annotated[str | None, typer.Option(help="Only refusals on this program.")] = None,
        limit: Annotated[int, typer.Option(min=1, max=1000, help="The newest this many.")] = 100,
        as_json: JsonOpt = False,
    ) -> None:
        """Refusals no open pause could hold in its timeline (admin role); exit 1 if their chain is broken."""
        with _client(as_json) as client:
            log = client.refusals(program=program, limit=limit)

            def human() -> None:
                table = Table(title="Refusals outside any pause's timeline")
                for col in ("at", "actor", "program", "action", "reason"):
                    table.add_column(col)
                for e in log["entries"]:
                    table.add_row(str(e["at"])[:19], e["actor"], e["program"] or "-", e["action"], e["reason"])
                out.print(table)
                for problem in log["chain_problems"]:
                    out.print(f"[red]chain broken:[/red] {problem}")

            _emit(log, as_json, human)
            if log["chain_problems"]:
                raise typer.Exit(1)

    @app.command("status")
    def status(
        program: ProgramArg,
        scope: Annotated[bool, typer.Option(help="Include the recorded exposure scope (review roles only).")] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Show a pause: state, containment, checklist, plan, approvals, timeline."""
        with _client(as_json) as client:
            view = client.status(program, scope=scope)
            _emit(view, as_json, lambda: _status_tables(view))

    @app.command("checklist")
    def checklist(program: ProgramArg, as_json: JsonOpt = False) -> None:
        """Show the review checklist."""
        with _client(as_json) as client:
            items = client.checklist(program)
            _emit(items, as_json, lambda: _checklist_table(items))

    @app.command("complete")
    def complete(
        program: ProgramArg,
        item: Annotated[str, typer.Argument(help="Checklist item id.")],
        evidence: Annotated[
            list[str] | None,
            typer.Option("--evidence", "-e", help="NAME=URI or NAME=URI@SHA256; repeat for each required piece."),
        ] = None,
        note: Annotated[str, typer.Option(help="A note for the record.")] = "",
        as_json: JsonOpt = False,
    ) -> None:
        """Complete (or amend) a checklist item with its evidence."""
        attached = parse_evidence(evidence or [])
        with _client(as_json) as client:
            receipt = client.complete(program, item, attached, note)
            _emit(receipt, as_json, lambda: _receipt(receipt))

    @app.command("plan")
    def plan(
        program: ProgramArg,
        plan_file: Annotated[Path, typer.Argument(help="Resume plan as YAML or JSON.", exists=True, dir_okay=False)],
        as_json: JsonOpt = False,
    ) -> None:
        """Propose (or replace) the resume plan from a file; earlier approvals are void."""
        try:
            document = yaml.safe_load(plan_file.read_text())
        except (yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
            _fail(EXIT_USAGE, f"{plan_file}: not a readable YAML or JSON plan: {exc}", as_json=as_json)
        if not isinstance(document, dict):
            _fail(
                EXIT_USAGE, f"{plan_file}: a plan is a mapping (agents, grants, conditions, summary)", as_json=as_json
            )
        with _client(as_json) as client:
            receipt = client.propose(program, document)
            _emit(receipt, as_json, lambda: _receipt(receipt))

    @app.command("approve")
    def approve(
        program: ProgramArg,
        digest: Annotated[
            str | None, typer.Option(help="Digest reviewed (default: the current one in status).")
        ] = None,
        role: Annotated[str | None, typer.Option(help="Approver role to act as, if you hold several.")] = None,
        comment: Annotated[str, typer.Option(help="A comment for the record.")] = "",
        as_json: JsonOpt = False,
    ) -> None:
        """Approve the current resume plan and review."""
        with _client(as_json) as client:
            if digest is None:
                digest = client.status(program).get("approval_digest")
                if not digest:
                    _fail(EXIT_REFUSED, "there is no plan to approve yet", as_json=as_json, error="no_plan")
                if not as_json:
                    out.print(f"approving digest {digest}")
            receipt = client.approve(program, digest, role=role, comment=comment)
            _emit(receipt, as_json, lambda: _receipt(receipt))

    @app.command("reject")
    def reject(
        program: ProgramArg, reason: Annotated[str, typer.Option(help="Why.")], as_json: JsonOpt = False
    ) -> None:
        """Reject the current resume plan."""
        with _client(as_json) as client:
            receipt = client.reject(program, reason)
            _emit(receipt, as_json, lambda: _receipt(receipt))

    @app.command("waive")
    def waive(
        program: ProgramArg,
        reason: Annotated[str, typer.Option(help="Why these agents need not be confirmed.")],
        agent: Annotated[list[str] | None, typer.Option("--agent", help="Agent id; repeat.")] = None,
        all_unconfirmed: Annotated[bool, typer.Option("--all", help="Every unconfirmed agent.")] = False,
        dataset: Annotated[
            str | None, typer.Option("--residual", help="Accept this dataset's residual access instead.")
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Stop waiting for agents that cannot be reached, or accept a dataset's residual access (commander)."""
        if dataset is not None:
            if agent or all_unconfirmed:
                _fail(EXIT_USAGE, "--residual waives a dataset, not agents", as_json=as_json, error="usage")
            with _client(as_json) as client:
                receipt = client.waive_residual(program, dataset, reason)
                _emit(receipt, as_json, lambda: _receipt(receipt))
            return
        if not agent and not all_unconfirmed:
            _fail(EXIT_USAGE, "name agents with --agent or pass --all", as_json=as_json, error="usage")
        with _client(as_json) as client:
            receipt = client.waive(program, reason, agent_ids=agent or [], all_unconfirmed=all_unconfirmed)
            _emit(receipt, as_json, lambda: _receipt(receipt))

    @app.command("decommission")
    def decommission(
        program: ProgramArg,
        reason: Annotated[str, typer.Option(help="Why the program ends.")],
        role: Annotated[str | None, typer.Option(help="Approver role to vote as, if you hold several.")] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Vote to end the program for good."""
        with _client(as_json) as client:
            receipt = client.decommission(program, reason, role=role)
            _emit(receipt, as_json, lambda: _receipt(receipt))

    @app.command("report")
    def report(
        program: ProgramArg,
        format: Annotated[str, typer.Option("--format", help="markdown or json.")] = "markdown",
    ) -> None:
        """Print the final report of a closed pause."""
        if format not in ("markdown", "json"):
            _fail(EXIT_USAGE, "--format is markdown or json", as_json=False, error="usage")
        with _client(format == "json") as client:
            document = client.report(program, format=format)
            sys.stdout.write(document if isinstance(document, str) else json.dumps(document, indent=2) + "\n")

    users = typer.Typer(help="Local users and their API tokens (embedded stack).", no_args_is_help=True)
    app.add_typer(users, name="users")

    @users.command("add")
    def users_add(
        name: Annotated[str, typer.Argument(help="The user's name (the actor in every timeline entry).")],
        role: Annotated[list[str], typer.Option("--role", help="A role; repeat.")],
        replace: Annotated[bool, typer.Option(help="Issue a new token for an existing user.")] = False,
        users_file: Annotated[Path | None, typer.Option(help="Default: api.users_file of the configuration.")] = None,
        config: Annotated[Path | None, typer.Option(help="Configuration file (default: $PAUSEGATE_CONFIG).")] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Add a user and print their token once (only its hash is kept)."""
        from pausegate.auth.local import LocalTokens
        from pausegate.config import load_settings

        try:
            path = users_file or load_settings(config).api.users_file
            token = LocalTokens(path).add(name, role, replace=replace)
        except (ValueError, ConfigError) as exc:
            _fail(EXIT_USAGE, str(exc), as_json=as_json, error="usage")

        def human() -> None:
            out.print(f"user [bold]{name}[/bold] ({', '.join(sorted(set(role)))}) added to {path}")
            out.print("token (shown once, keep it secret):")
            print(token)
            out.print(f"use it with: export PAUSEGATE_TOKEN={token}")

        _emit({"name": name, "roles": sorted(set(role)), "token": token, "users_file": str(path)}, as_json, human)

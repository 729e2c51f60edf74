"""``keys``: the SSH keys and passkeys people sign approvals with, enrolled by their holder and confirmed
by an admin other than the holder (``/v1/keys``; every change a line of the signed enrollment log)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated, Any

import typer

from pausegate.approvals.possession import ENROLL_NAMESPACE
from pausegate.cli.exits import EXIT_USAGE, fail
from pausegate.cli.options import JsonOpt
from pausegate.cli.output import add_row, emit_json, line, out, table, when
from pausegate.cli.session import connect
from pausegate.cli.ssh_signing import SigningFailed, sign
from pausegate.models.signatures import EnrolledKey

app = typer.Typer(help="Keys that sign approvals: enroll yours, confirm others' (admin).", no_args_is_help=True)


def _show_key(data: Any, as_json: bool) -> None:
    if as_json:
        emit_json(data)
        return
    key = EnrolledKey.model_validate(data)
    confirmed = ", ".join(key.confirmed_by) or "not yet confirmed"
    out.say(f"{key.kind} key {key.key_id} of {key.holder}: {confirmed}")


@app.command("list")
def list_keys(as_json: JsonOpt = False) -> None:
    """Every enrolled key, who holds it, who enrolled and confirmed it."""
    with connect(as_json) as client:
        reply = client.keys()
        if as_json:
            emit_json(reply.json)
            return
        shown = table(line("Enrolled keys"), ("key", "kind", "holder", "enrolled", "by", "confirmed by"))
        for k in (EnrolledKey.model_validate(k) for k in reply.json["keys"]):
            add_row(shown, k.key_id[:16], k.kind, k.holder, when(k.enrolled_at), k.enrolled_by,
                    ", ".join(k.confirmed_by))
        out.print(shown)
        for problem in reply.json.get("problems", []):
            out.print(line(("log problem:", "red"), " ", problem))


@app.command("enroll")
def enroll(
    ssh_key: Annotated[Path, typer.Option("--ssh-key", help="Your SSH key (its .pub beside it, or the .pub).")],
    as_json: JsonOpt = False,
) -> None:
    """Enroll your own SSH key; it signs approvals once an admin other than you confirms it.

    It signs the server's challenge first (ssh-keygen -Y sign, the enrollment's namespace): proof you hold it.
    """
    pub = ssh_key if ssh_key.suffix == ".pub" else ssh_key.with_name(ssh_key.name + ".pub")
    try:
        public_key = pub.read_text(encoding="utf-8")[:4096]
    except (OSError, UnicodeDecodeError) as exc:
        fail(EXIT_USAGE, f"{pub}: {exc}", as_json=as_json, error="unreadable_key")
    with connect(as_json) as client:
        challenge = str(client.ssh_challenge(public_key).json["challenge"])
        try:
            proof = sign(ssh_key, challenge.encode(), namespace=ENROLL_NAMESPACE)
        except SigningFailed as exc:
            fail(EXIT_USAGE, f"{ssh_key}: {exc}", as_json=as_json, error="signing_failed")
        _show_key(client.enroll_ssh_key(public_key, challenge, base64.b64encode(proof).decode()).json, as_json)


@app.command("confirm")
def confirm(key_id: Annotated[str, typer.Argument(help="The key's id (pausegate keys list).")],
            as_json: JsonOpt = False) -> None:
    """Confirm someone else's enrolled key (admin)."""
    with connect(as_json) as client:
        _show_key(client.confirm_key(key_id).json, as_json)


@app.command("remove")
def remove(key_id: Annotated[str, typer.Argument(help="The key's id (pausegate keys list).")],
           as_json: JsonOpt = False) -> None:
    """Remove a key: your own, or anyone's (admin). Pauses that start afterwards do not count it."""
    with connect(as_json) as client:
        client.remove_key(key_id)
        if as_json:
            emit_json({"removed": key_id})
        else:
            out.say(f"key {key_id[:16]} removed")

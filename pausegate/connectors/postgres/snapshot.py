"""The catalog as it stood when access was revoked, as a document the evidence store can hold.

Revoking reads the raw catalog (grants, memberships, owners, default privileges, dependencies) in
the revoke's own transaction, just before closing anything. That read is written here as rows —
the same rows ``load_state`` built — so that the exposure scope can be derived from it after the
revoke has committed, off the path that cuts access, and derive exactly what a scope recorded
before the revoke would have held.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pausegate.connectors.postgres.catalog import Acl, DefAcl, Edge, Obj, Role, State
from pausegate.errors import EvidenceError

FORMAT = "pausegate.postgres.catalog-snapshot/1"


def snapshot_document(dataset: str, state: State, captured_at: datetime) -> dict[str, Any]:
    """``state`` as plain JSON values: one list per catalog, one short list per row."""
    return {
        "format": FORMAT,
        "dataset": dataset,
        "captured_at": captured_at.isoformat(),
        "schema": state.schema,
        "schema_oid": state.schema_oid,
        "schema_owner": state.schema_owner,
        "whole_schema": state.whole_schema,
        "operator": state.operator,
        "operator_super": state.operator_super,
        "server_version": state.server_version,
        "objects": [
            [o.oid, o.schema, o.name, o.kind, o.owner, o.rls, o.depends_on, o.arg_types] for o in state.objects
        ],
        "acls": [[a.oid, a.grantee, a.grantor, a.privilege, a.grantable, a.column] for a in state.acls],
        "schema_acls": [[a.oid, a.grantee, a.grantor, a.privilege, a.grantable] for a in state.schema_acls],
        "defacls": [
            [d.creator, d.in_schema, d.objtype, d.grantee, d.grantor, d.privilege, d.grantable] for d in state.defacls
        ],
        "roles": [[r.name, r.login, r.superuser, r.bypassrls] for r in state.roles.values()],
        "edges": [[e.role, e.member, e.grantor, e.inherit, e.set, e.admin] for e in state.edges],
    }


def state_from_snapshot(document: Any) -> tuple[State, datetime]:
    """The ``State`` a snapshot was taken of, and when. The document comes from the evidence store,
    read against the digest the pause recorded; a malformed one is an ``EvidenceError``."""
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise EvidenceError(f"not a catalog snapshot (format {FORMAT} expected)")
    try:
        state = State(
            schema=document["schema"],
            schema_oid=document["schema_oid"],
            schema_owner=document["schema_owner"],
            whole_schema=document["whole_schema"],
            operator=document["operator"],
            operator_super=document["operator_super"],
            server_version=document["server_version"],
            objects=[
                Obj(oid=r[0], schema=r[1], name=r[2], kind=r[3], owner=r[4], rls=r[5], depends_on=list(r[6]),
                    arg_types=list(r[7]))
                for r in document["objects"]
            ],
            acls=[
                Acl(oid=r[0], grantee=r[1], grantor=r[2], privilege=r[3], grantable=r[4], column=r[5])
                for r in document["acls"]
            ],
            schema_acls=[
                Acl(oid=r[0], grantee=r[1], grantor=r[2], privilege=r[3], grantable=r[4])
                for r in document["schema_acls"]
            ],
            defacls=[
                DefAcl(creator=r[0], in_schema=r[1], objtype=r[2], grantee=r[3], grantor=r[4], privilege=r[5],
                       grantable=r[6])
                for r in document["defacls"]
            ],
            roles={r[0]: Role(r[0], r[1], r[2], r[3]) for r in document["roles"]},
            edges=[Edge(r[0], r[1], r[2], r[3], r[4], r[5]) for r in document["edges"]],
        )
        captured_at = datetime.fromisoformat(document["captured_at"])
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise EvidenceError(f"catalog snapshot is malformed: {exc!r}"[:300]) from exc
    return state, captured_at

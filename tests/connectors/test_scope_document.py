"""The scope document written from each holder's pre-encoded members is the model's canonical JSON, on a
catalog built to interleave: large groups whose members are also granted directly, nested groups, a
superuser and a predefined role with members, PUBLIC, column grants, awkward names."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from pausegate.canonical import canonical_json
from pausegate.connectors.postgres.catalog import PUBLIC, READ_ALL, Acl, DefAcl, Edge, Obj, Role, State
from pausegate.connectors.postgres.scope import scope_document, scope_facts, scope_model
from pausegate.connectors.scope_facts import ScopeFacts
from pausegate.models.runbook import DatasetSpec

SPEC = DatasetSpec(name="org", connection="org-db", schema="org", break_glass_roles=["bg"])


def organisation(seed: int, people: int = 300, tables: int = 12) -> State:
    rng = random.Random(seed)
    names = [f"u{i:04d}" for i in range(people)] + ['q"uote', "ünï", "tab\there", "a", "zz"]
    roles = {n: Role(n, login=True) for n in names}
    groups = ["g_big", "g_small", "g_nested", "g_empty"]
    roles.update({g: Role(g) for g in groups})
    roles.update({"root": Role("root", login=True, superuser=True), READ_ALL: Role(READ_ALL), "bg": Role("bg", True),
                  "owner": Role("owner"), "postgres": Role("postgres", True, True)})
    edges = [Edge("g_big", n, "postgres") for n in names if rng.random() < 0.8]
    edges += [Edge("g_small", n, "postgres", inherit=rng.random() < 0.5) for n in rng.sample(names, 20)]
    edges += [Edge("g_nested", "g_small", "postgres"), Edge("g_big", "g_nested", "postgres")]
    edges += [Edge("root", n, "postgres", inherit=False) for n in rng.sample(names, 5)]
    edges += [Edge(READ_ALL, n, "postgres") for n in rng.sample(names, 7)]
    edges += [Edge("owner", n, "postgres") for n in rng.sample(names, 3)]
    objects = [Obj(oid=100 + t, schema="org", name=f"t{t:02d}", kind="table", owner="owner") for t in range(tables)]
    acls: list[Acl] = []
    for o in objects:
        acls.append(Acl(o.oid, "owner", "owner", "SELECT", False))
        acls.append(Acl(o.oid, rng.choice(["g_big", "g_small", "g_nested", "g_empty"]), "owner", "SELECT", False))
        if rng.random() < 0.5:
            acls.append(Acl(o.oid, "g_big", "owner", "INSERT", False))
        for n in rng.sample(names, 40):
            acls.append(Acl(o.oid, n, "owner", rng.choice(["SELECT", "UPDATE"]), rng.random() < 0.1))
        for n in rng.sample(names, 3):
            acls.append(Acl(o.oid, n, "owner", "SELECT", False, column="v"))
        if rng.random() < 0.3:
            acls.append(Acl(o.oid, PUBLIC, "owner", "SELECT", False))
        acls.append(Acl(o.oid, "bg", "owner", "SELECT", False))
    return State(
        schema="org", schema_oid=10, schema_owner="owner", whole_schema=True, operator="postgres",
        operator_super=True, server_version="16.0", objects=objects, acls=acls,
        schema_acls=[Acl(10, PUBLIC, "owner", "USAGE", False), Acl(10, "g_big", "owner", "USAGE", False)],
        defacls=[DefAcl("owner", True, "r", "g_small", "owner", "SELECT", False)],
        roles=roles, edges=edges,
    )


@pytest.mark.parametrize("seed", range(6))
def test_the_document_and_facts_are_the_models(seed: int) -> None:
    state = organisation(seed)
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    model = scope_model(SPEC, state, at)
    assert scope_document(SPEC, state, at) == canonical_json(model.model_dump(mode="json"))
    assert scope_facts(state) == ScopeFacts.of(model)

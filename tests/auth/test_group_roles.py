"""Roles from an identity provider's groups: only groups meant for pausegate grant any (issue 29)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from pausegate.auth import OidcVerifier
from pausegate.auth.oidc import roles_from_groups
from pausegate.errors import ConfigError
from tests.api.support import OidcIssuer, api_world, oidc
from tests.support.fault_report import record_result
from tests.support.harness import Harness

COMPANY_GROUPS = ["admin", "ciso", "incident-commander", "cto", "employees"]
"""Groups a company's directory may well have, managed for everything but pausegate."""


class TestGroupRoles:
    def test_a_group_grants_a_role_only_when_prefixed_or_mapped(self) -> None:
        assert roles_from_groups(COMPANY_GROUPS) == ([], {})
        assert roles_from_groups(["pausegate:ciso", "pausegate:telemetry:cpo"]) == (["ciso"], {"telemetry": ["cpo"]})
        mapped = {"sec-leads": ["ciso", "cpo@telemetry"], "it-ops": ["admin"]}
        assert roles_from_groups(["sec-leads", "ciso"], group_roles=mapped) == (["ciso"], {"telemetry": ["cpo"]})
        # Without a prefix only the map grants; another prefix is just another name.
        assert roles_from_groups(["pausegate:ciso", "it-ops"], prefix=None, group_roles=mapped) == (["admin"], {})
        assert roles_from_groups(["pausegate:ciso", "pg/cto"], prefix="pg/") == (["cto"], {})

    async def test_a_map_granting_a_role_nobody_can_hold_is_a_configuration_error(self) -> None:
        settings = OidcIssuer().settings().model_copy(update={"group_roles": {"it-ops": ["admin@telemetry"]}})
        async with httpx.AsyncClient() as http:
            with pytest.raises(ConfigError, match="admin is API-wide"):
                OidcVerifier(settings, http)

    async def test_groups_called_admin_or_ciso_grant_nothing_through_the_api(
        self, harness: Harness, tmp_path: Path
    ) -> None:
        """An employee whose directory groups happen to be called ``admin``, ``ciso`` and
        ``incident-commander`` (the API trusting the provider, no group map) acts as nobody."""
        prefix_only = OidcIssuer().settings().model_copy(update={"group_roles": {}})
        async with api_world(harness, tmp_path / "api", oidc_settings=prefix_only) as api:
            mallory = api.client(token=api.issuer.token("mallory", COMPANY_GROUPS))
            who = (await mallory.get("/v1/whoami")).json()
            assert who == {"id": oidc("mallory"), "roles": []}
            pulled = await mallory.post("/v1/pauses", json={"program": api.program, "reason": "mine now"})
            assert pulled.status_code == 403 and pulled.json()["error"] == "wrong_role"
            users = await mallory.get("/v1/users")
            assert users.status_code == 403 and users.json()["error"] == "wrong_role"
            # The same person in the group made for pausegate is the commander.
            carla = api.client(token=api.issuer.token("carla", [f"pausegate:{api.program}:incident-commander"]))
            started = await carla.post("/v1/pauses", json={"program": api.program, "reason": "leak"})
            assert started.status_code == 201, started.text
        record_result("identity-provider group named like a role", "groups admin, ciso, incident-commander",
                      injected=len(COMPANY_GROUPS), outcome="no role: trigger and users refused (403 wrong_role)")

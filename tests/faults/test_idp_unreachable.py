"""The identity provider unreachable while the console finishes a sign-in: the person sees a page that says
so and may start again, no session is opened, and the API's local tokens go on working.

The provider's sign-in page answers (the browser reaches it), and its token endpoint, which the console
calls to exchange the code, refuses every connection (port 1): the moment a provider goes away mid-sign-in.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser

from pausegate.config import OidcSettings
from pausegate.console.oidc import CALLBACK_PATH
from pausegate.console.sessions import SESSION_COOKIE
from tests.console.conftest import browser  # noqa: F401  (the session's Chromium)
from tests.console.support import console_world
from tests.console.test_console_oidc import AUDIENCE, CLIENT_ID, cookie_names, new_person, refused, sign_in_via_provider
from tests.support.fault_report import record_result
from tests.support.harness import Harness
from tests.support.oidc_provider import OidcProvider, User, serve_provider

UNREACHABLE = "http://127.0.0.1:1/token"  # nothing listens on port 1: every connection is refused at once


@pytest.mark.slow
async def test_an_unreachable_provider_mid_sign_in_opens_no_session_and_local_tokens_still_work(
    harness: Harness, tmp_path: Path, browser: Browser  # noqa: F811
) -> None:
    provider = OidcProvider(client_id=CLIENT_ID, audience=AUDIENCE,
                            user=User(sub="cleo-oidc", groups=["staff"], email="cleo@example.com"))
    async with serve_provider(provider):
        settings = OidcSettings(
            issuer=provider.url, audience=AUDIENCE, jwks_url=f"{provider.url}/jwks", leeway_seconds=5,
            client_id=CLIENT_ID, authorization_endpoint=f"{provider.url}/authorize", token_endpoint=UNREACHABLE,
        )
        async with console_world(harness, tmp_path, browser, oidc_settings=settings) as console:
            provider.redirect_uri = console.url + CALLBACK_PATH
            cleo = await new_person(console, "cleo-oidc")
            await sign_in_via_provider(cleo)
            await refused(cleo.page, "could not be reached")
            assert SESSION_COOKIE not in await cookie_names(cleo), "a session opened without the provider"
            whoami = await console.http("carol").get("/v1/whoami")
            assert whoami.status_code == 200 and whoami.json()["id"] == "local:carol", whoami.text
    record_result("identity provider unreachable", "token endpoint refusing connections during a console sign-in",
                  injected=1, outcome="sign-in page saying the provider could not be reached; no session; "
                  "local API tokens still work")

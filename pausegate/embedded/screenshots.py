"""Screenshots of the console's walk-through: ``python -m pausegate.embedded.screenshots docs/console/``.

Starts a throw-away embedded stack (its own data directory and free ports, so it runs beside
``make up``), adds the walk-through's people through the API as the first administrator, and drives
Debian's Chromium through the worked example, saving one PNG per step. One agent starts offline so
that containment is caught in progress, then comes back. Needs the dev extras (Playwright) and a
Chromium (``apt-get install chromium``). It lives with the embedded stack it drives, not in the
console: it is a client of the whole stack, and the console does not import the stack that serves it.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import sys
import tempfile
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from pausegate.embedded.stack import EXAMPLE_PROGRAM, StackOptions, embedded_stack

PEOPLE = {
    "ann": ["security-analyst"],
    "sam": ["security-lead"],
    "dave": ["data-engineer"],
    "pia": ["privacy-officer"],
    "lee": ["legal-counsel"],
    "cleo": ["ciso"],
    "pat": ["cpo"],
}
REVIEW = [
    ("access-review", "ann", "https://wiki.example.com/inc-42/access"),
    ("root-cause", "sam", "https://wiki.example.com/inc-42/rca"),
    ("narrowed-access", "dave", "https://wiki.example.com/inc-42/design"),
    ("data-minimisation", "pia", "https://wiki.example.com/inc-42/min"),
    ("employee-notice", "pia", "https://wiki.example.com/inc-42/notice"),
    ("legal-privacy-review", "lee", "https://wiki.example.com/inc-42/legal"),
]
GRANTS = """telemetry telemetry_analysts keystrokes SELECT id,agent_id,employee,captured_at,key_code
telemetry telemetry_analysts mouse_events SELECT
telemetry telemetry_ingest keystrokes INSERT
telemetry telemetry_ingest mouse_events INSERT"""
CONDITIONS = "typed_content and window_title are no longer collected\n" \
    "access to the telemetry tables is reviewed quarterly"
SUMMARY = "Analysts read without typed content; the writer writes; nobody else."
OFFLINE_AGENT = "agent-00007"
TIMEOUT_MS = 120_000
AUTHENTICATOR = {"protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True,
                 "isUserVerified": True, "automaticPresenceSimulation": True}
"""Chromium's virtual authenticator (the DevTools protocol's WebAuthn domain): the leaders' passkeys."""


def _free_port() -> int:
    # The console must be reached as localhost on a port known before it starts: passkeys are bound to the
    # origin (an IP address is not a valid RP ID), and the stack pins the origin from its configured port.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def report_written(http: httpx.AsyncClient, program: str, token: str, *, timeout: float = 60.0) -> None:
    """Until the report exists: it is written just after the pause enters RESUMED."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        view = await http.get(f"/v1/pauses/{program}", headers={"Authorization": f"Bearer {token}"})
        view.raise_for_status()
        if view.json()["report"] is not None:
            return
        if loop.time() > deadline:
            raise RuntimeError("no report within a minute of resuming")
        await asyncio.sleep(0.2)


async def propose_example_plan(http: httpx.AsyncClient, program: str, tokens: dict[str, str], plan_file: Path) -> None:
    """Propose ``plan_file`` as sam, every copy the pause found dropped."""
    import yaml

    view = await http.get(f"/v1/pauses/{program}", headers={"Authorization": f"Bearer {tokens['admin']}"})
    view.raise_for_status()
    copies = (view.json()["containment"].get("copies") or {}).get("undecided", [])
    plan = yaml.safe_load(await asyncio.to_thread(plan_file.read_text))
    plan["copies"] = [{"copy_id": c, "action": "drop"} for c in copies]
    proposed = await http.post(f"/v1/pauses/{program}/plan", json=plan,
                               headers={"Authorization": f"Bearer {tokens['sam']}"})
    if proposed.status_code != 200:
        raise RuntimeError(f"the example plan was refused: {proposed.text[:500]}")


async def with_credentials_of(page: Any, cdp: Any, authenticator: str) -> None:
    """A virtual authenticator in ``page``'s tab holding the credentials of ``authenticator`` (another tab's):
    the same person's passkey, in a second tab."""
    credentials = await cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    tab = await page.context.new_cdp_session(page)
    await tab.send("WebAuthn.enable")
    added = await tab.send("WebAuthn.addVirtualAuthenticator", {"options": AUTHENTICATOR})
    for credential in credentials["credentials"]:
        await tab.send("WebAuthn.addCredential",
                       {"authenticatorId": added["authenticatorId"], "credential": credential})


async def walk_through(out: Path, runbooks: Path, chromium: str, agents: int) -> list[Path]:
    """Run the walk-through and save its screenshots in ``out``; returns them in order."""
    from playwright.async_api import Page, async_playwright, expect

    # Containment retries an unconfirmed agent with backoff (seconds apart on the stack's default tuning).
    expect.set_options(timeout=TIMEOUT_MS)
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    saved: list[Path] = []
    data = Path(tempfile.mkdtemp(prefix="pausegate-screenshots-"))
    options = StackOptions(data_dir=data / "stack", agents=agents, offline_agents=[OFFLINE_AGENT], temporal_port=None,
                           ui_port=None, runbooks_dir=runbooks, fleet_latency_ms=5.0, fleet_jitter_ms=2.0,
                           api_port=_free_port())
    try:
        async with embedded_stack(options) as stack, async_playwright() as playwright, \
                httpx.AsyncClient(base_url=stack.api_url, timeout=30) as http:
            assert stack.admin_token, "a fresh stack prints its first administrator's token"
            tokens = {"admin": stack.admin_token}
            for name, roles in PEOPLE.items():
                added = await http.post("/v1/users", json={"name": name, "roles": roles},
                                        headers={"Authorization": f"Bearer {stack.admin_token}"})
                added.raise_for_status()
                tokens[name] = added.json()["token"]
            browser = await playwright.chromium.launch(executable_path=chromium, headless=True)
            p = EXAMPLE_PROGRAM
            console = stack.api_url.replace("127.0.0.1", "localhost")

            async def person(name: str, *, zoom: float = 1.0) -> Page:
                context = await browser.new_context(base_url=console, device_scale_factor=zoom,
                                                    viewport={"width": int(1280 / zoom), "height": int(900 / zoom)})
                context.set_default_timeout(TIMEOUT_MS)
                page = await context.new_page()
                await page.goto("/console/sign-in")
                await page.get_by_label("Your token").fill(tokens[name])
                await page.get_by_role("button", name="Sign in").click()
                await expect(page.locator("[data-fact=whoami]")).to_have_text(f"local:{name}")
                return page

            async def shot(page: Page, name: str, *, full: bool = True) -> None:
                path = out / f"{len(saved) + 1:02d}-{name}.png"
                await page.screenshot(path=str(path), full_page=full)
                saved.append(path)
                print(path, flush=True)

            async def step(what: str, action: Callable[[], Awaitable[None]]) -> None:
                try:
                    await action()
                except Exception as exc:
                    raise RuntimeError(f"screenshot step {what!r} failed: {exc}") from exc

            # 1-3: sign in, the board, the confirmation before pulling the switch.
            signing_in = await (await browser.new_context(base_url=console)).new_page()
            await signing_in.goto("/console/sign-in")
            await shot(signing_in, "sign-in", full=False)
            admin = await person("admin")
            await shot(admin, "board-before")

            # 3-4: the leaders enroll passkeys, an admin other than them confirms them (before the pause: a key
            # counts for the pauses that start after it was confirmed).
            leaders: dict[str, Page] = {}
            authenticators: dict[str, tuple[Any, str]] = {}
            for name in ("cleo", "pat"):
                page = await person(name)
                cdp = await page.context.new_cdp_session(page)
                await cdp.send("WebAuthn.enable")
                virtual = await cdp.send("WebAuthn.addVirtualAuthenticator", {"options": AUTHENTICATOR})
                authenticators[name] = (cdp, virtual["authenticatorId"])
                await page.goto("/console/keys")
                await page.get_by_role("button", name="Add a passkey").click()
                await step(f"{name} enrolled", partial(expect(page.locator("[data-fact=key]")).to_be_visible))
                if name == "cleo":
                    await shot(page, "enroll-passkey")
                leaders[name] = page
            await admin.goto("/console/keys")
            await step("to confirm", lambda: expect(admin.locator("[data-fact=unconfirmed]")).to_have_count(2))
            await shot(admin, "confirm-keys")
            for name in ("cleo", "pat"):
                await admin.get_by_role("button", name=f"Confirm local:{name}'s key").click()
                await step(f"{name} confirmed", partial(expect(admin.locator("#main .flash")).to_contain_text,
                                                        f"of local:{name} confirmed"))
            await admin.goto("/console/")
            await admin.goto(f"/console/pause?program={p}")
            await admin.get_by_label("Reason").fill("telemetry readable company-wide")
            await admin.get_by_label("Severity").select_option("critical")
            await admin.get_by_role("button", name="Review before pausing").click()
            await shot(admin, "confirm-pause")

            # 4-5: containment live (one agent offline holds it), then complete when the agent returns.
            await admin.get_by_role("button", name="Pull the kill switch").click()
            await step("containing", lambda: expect(admin.locator("[data-fact=agents-unconfirmed]")).to_have_text("1"))
            await shot(admin, "containing")
            online = await http.post(f"{stack.fleet.url}/admin/programs/{p}/online",
                                     json={"agent_ids": [OFFLINE_AGENT]})
            online.raise_for_status()
            await step("contained", lambda: expect(admin.locator("#summary-h + div [data-fact=state]")).to_have_text(
                "UNDER_REVIEW"))
            await shot(admin, "under-review")

            # 6: a reviewer's view: what she may complete, and why the rest is blocked.
            pages: dict[str, Page] = {}
            for item, who, uri in REVIEW:
                page = pages.get(who) or await person(who)
                pages[who] = page
                await page.goto(f"/console/pauses/{p}")
                entry = page.locator(f"li[data-item='{item}']")
                await entry.get_by_label("Where it is (URI)").fill(uri)
                if item == "access-review":
                    await entry.get_by_label("Note (optional)").fill("Reads outside the ML team: 37 roles, listed.")
                    await shot(page, "checklist-as-analyst")
                await entry.get_by_role("button", name=f"Complete {item}").click()
                done = entry.locator("[data-fact=item-completed-by]")
                await step(item, partial(expect(done).to_be_visible))

            # 7-8: the plan proposed, then the sign-off page as a leader sees it.
            sam = pages["sam"]
            await sam.goto(f"/console/pauses/{p}/plan")
            await sam.get_by_label("Summary").fill(SUMMARY)
            await sam.locator("#plan-grants").fill(GRANTS)
            await sam.get_by_label("Conditions (one a line)").fill(CONDITIONS)
            await shot(sam, "propose-plan")
            # The worked example's plan (examples/resume-plan.yaml: narrowed grants, a data action, consent) with
            # a decision for each copy the pause found, proposed through the API: the console's form has no
            # field for copy decisions.
            await propose_example_plan(http, p, tokens, runbooks.parent / "examples" / "resume-plan.yaml")
            await sam.goto(f"/console/pauses/{p}/plan")
            await step("proposed", lambda: expect(sam.locator("[data-fact=plan-digest]")).to_be_visible())
            cleo = leaders["cleo"]
            await cleo.goto(f"/console/pauses/{p}/plan")
            await step("diff", lambda: expect(cleo.locator("[data-fact=diff-loses]")).not_to_have_text("0"))
            await cleo.get_by_label("Comment (required)").fill("Narrowed access and conditions reviewed.")
            await shot(cleo, "sign-off")

            # 9: a refusal: the same leader approving again from a tab opened before her approval.
            stale_tab = await cleo.context.new_page()
            await with_credentials_of(stale_tab, *authenticators["cleo"])
            await stale_tab.goto(f"/console/pauses/{p}/plan")
            await cleo.get_by_role("button", name="Approve with your passkey").click()
            await step("approved", lambda: expect(cleo.get_by_role("status").first).to_contain_text("Approved"))
            await stale_tab.get_by_label("Comment (required)").fill("Approving again by mistake.")
            await stale_tab.get_by_role("button", name="Approve with your passkey").click()
            await step("refused", lambda: expect(stale_tab.locator("[data-fact=refusal-code]")).to_have_text(
                "duplicate_approval"))
            await stale_tab.locator("#refusal").scroll_into_view_if_needed()
            await shot(stale_tab, "refused-second-approval", full=False)

            # 10-12: the second approval, the pause resumed live on the board, the report; the board at 200 % zoom.
            pat = leaders["pat"]
            await pat.goto(f"/console/pauses/{p}/plan")
            await pat.get_by_label("Comment (required)").fill("Approved with the conditions above.")
            await pat.get_by_role("button", name="Approve with your passkey").click()
            await admin.goto("/console/")
            board_state = admin.locator(f"tr[data-program='{p}'] [data-fact=state]")
            await step("resumed", partial(expect(board_state).to_have_text, "RESUMED"))
            await shot(admin, "board-resumed")
            await report_written(http, p, tokens["admin"])
            await admin.goto(f"/console/pauses/{p}/report")
            await step("report", lambda: expect(admin.locator("[data-fact=report-outcome]")).to_have_text("RESUMED"))
            await shot(admin, "report")
            zoomed = await person("admin", zoom=2.0)
            await zoomed.goto(f"/console/pauses/{p}")
            await shot(zoomed, "pause-at-200-percent", full=False)
            await browser.close()
    finally:
        shutil.rmtree(data, ignore_errors=True)  # the stack's PostgreSQL, when beside it, is inside too
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pausegate.embedded.screenshots",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="directory for the PNG files (e.g. docs/console/)")
    parser.add_argument("--runbooks", type=Path, default=Path("runbooks"),
                        help="runbooks directory (default: runbooks)")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--agents", type=int, default=2000, help="agents in the reference fleet (default: 2000)")
    args = parser.parse_args(argv)
    try:
        import playwright  # noqa: F401
    except ImportError:
        print("needs Playwright: pip install -e '.[dev]'", file=sys.stderr)
        return 2
    asyncio.run(walk_through(args.out, args.runbooks, args.chromium, args.agents))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The reference fleet: a stand-in for a company's agent fleet that speaks the fleet contract.

It holds programs of agents (collecting, halted, offline), a program-level switch that online
agents follow at once and offline agents read when they return, idempotent bulk halts and
resumes, a streamed audit trail, injected latency and errors, and telemetry that is really
written to PostgreSQL while agents collect.

    app = create_app(FleetSettings(agents=100))            # ASGI app, e.g. for httpx.ASGITransport
    async with serve_fleet(settings) as fleet: fleet.url   # real socket, current event loop
    with ThreadedFleet(settings) as fleet: fleet.url       # real socket, own thread
    python -m pausegate.reference.fleet --port 8701          # command line
"""

from pausegate.reference.fleet.app import create_app
from pausegate.reference.fleet.server import RunningFleet, ThreadedFleet, serve_fleet
from pausegate.reference.fleet.settings import FaultSettings, FleetSettings

__all__ = ["FaultSettings", "FleetSettings", "RunningFleet", "ThreadedFleet", "create_app", "serve_fleet"]

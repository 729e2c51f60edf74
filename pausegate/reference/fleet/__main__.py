"""``python -m pausegate.reference.fleet``: serve the reference fleet, or write its OpenAPI document."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import structlog

from pausegate.reference.fleet.app import create_app
from pausegate.reference.fleet.server import bind, make_server
from pausegate.reference.fleet.settings import FaultSettings, FleetSettings

TOKEN_ENV = "PAUSEGATE_FLEET_TOKEN"
DSN_ENV = "PAUSEGATE_FLEET_TELEMETRY_DSN"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pausegate.reference.fleet", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8701)
    p.add_argument(
        "--program",
        action="append",
        dest="programs",
        metavar="NAME",
        help="a program of the fleet (repeatable; default employee-telemetry)",
    )
    p.add_argument("--agents", type=int, default=10_000, help="agents per program")
    p.add_argument("--employees", type=int, default=50)
    p.add_argument("--offline-fraction", type=float, default=0.0)
    p.add_argument("--offline-agents", default="", help="comma-separated agent ids that start offline")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--token", default=None, help=f"bearer token (or ${TOKEN_ENV}; keeps it out of ps)")
    p.add_argument("--telemetry-dsn", default=None, help=f"PostgreSQL DSN of the writer (or ${DSN_ENV})")
    p.add_argument("--tick-seconds", type=float, default=0.5)
    p.add_argument("--max-rows-per-tick", type=int, default=200)
    p.add_argument("--latency-ms", type=float, default=20.0)
    p.add_argument("--jitter-ms", type=float, default=10.0)
    p.add_argument("--error-rate", type=float, default=0.0)
    p.add_argument("--openapi", type=Path, metavar="FILE", help="write the OpenAPI document to FILE and exit")
    return p


def settings_from(args: argparse.Namespace) -> FleetSettings:
    token = args.token or os.environ.get(TOKEN_ENV) or None
    dsn = args.telemetry_dsn or os.environ.get(DSN_ENV) or None
    return FleetSettings.model_validate(
        {
            "programs": args.programs or ["employee-telemetry"],
            "agents": args.agents,
            "employees": args.employees,
            "offline_fraction": args.offline_fraction,
            "offline_agents": [a for a in args.offline_agents.split(",") if a],
            "seed": args.seed,
            "token": token,
            "telemetry_dsn": dsn,
            "tick_seconds": args.tick_seconds,
            "max_rows_per_tick": args.max_rows_per_tick,
            "faults": FaultSettings(
                latency_ms=args.latency_ms, jitter_ms=args.jitter_ms, error_rate=args.error_rate
            ),
        }
    )


def openapi_document() -> str:
    """The contract as OpenAPI JSON, stable across runs (docs/fleet-openapi.json is this text)."""
    return json.dumps(create_app(FleetSettings(agents=0)).openapi(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.openapi:
        args.openapi.write_text(openapi_document())
        return 0
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.dev.ConsoleRenderer() if sys.stderr.isatty() else structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    settings = settings_from(args)
    server = make_server(create_app(settings))
    sock = bind(args.host, args.port)
    structlog.get_logger("pausegate.reference.fleet").info(
        "fleet.listening", host=args.host, port=sock.getsockname()[1]
    )
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())

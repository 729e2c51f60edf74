"""The embedded stack in a process of its own, so a test can kill every process of it at once.

    python -m tests.faults.stack_proc --data-dir DIR --ready FILE [--agents N] [--offline ID]...

Once every part is up it writes, as JSON to ``--ready``, where the parts listen and the first start's
admin token (None on a later start).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path

from pausegate.embedded.stack import StackOptions, embedded_stack

ROOT = Path(__file__).resolve().parents[2]


async def main(args: argparse.Namespace) -> None:
    options = StackOptions(
        data_dir=args.data_dir, agents=args.agents, offline_agents=args.offline, temporal_port=args.temporal_port,
        ui_port=None, fleet_port=args.fleet_port, api_port=args.api_port, fleet_latency_ms=1.0,
        fleet_jitter_ms=1.0, telemetry_tick_seconds=0.1, browse_seconds=None, runbooks_dir=ROOT / "runbooks",
    )
    async with embedded_stack(options) as stack:
        assert stack.urgent_worker is not None
        args.ready.write_text(json.dumps({
            "pid": os.getpid(), "urgent_pid": stack.urgent_worker.pid, "api_url": stack.api_url,
            "fleet_url": stack.fleet.url, "admin_token": stack.admin_token, "config": str(stack.config_path),
            "database_dsn": stack.database_dsn,
        }))
        await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--ready", type=Path, required=True)
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--offline", action="append", default=[])
    parser.add_argument("--temporal-port", type=int, required=True)
    parser.add_argument("--fleet-port", type=int, required=True)
    parser.add_argument("--api-port", type=int, required=True)
    asyncio.run(main(parser.parse_args()))

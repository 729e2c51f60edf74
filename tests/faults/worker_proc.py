"""A pause worker in a process of its own, so a test can kill -9 it.

    python -m tests.faults.worker_proc --config FILE --ready FILE [--hold before:revoke] [--markers DIR]
        [--ambiguous-rate 0.1] [--seed N] [--regular-only] [--file-size-limit BYTES]

The worker is the project's own (``build_worker``) with the configured connectors; dataset access
goes through ``FaultyAccess`` so a test can hold a call at a point or make it succeed ambiguously.
Once connected and about to poll, it writes the wall-clock time to ``--ready``. ``--regular-only`` runs
no urgent worker (the test runs that one); ``--file-size-limit`` sets the process's RLIMIT_FSIZE soft
limit (the hard one stays unlimited, so the test can raise it again with ``prlimit``): a write past it
fails with EFBIG, as a full disk fails with ENOSPC, and SIGXFSZ is ignored so that it is an error, not
the end of the process.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import signal
import time
from pathlib import Path

from pausegate.config import Settings, load_settings
from pausegate.connectors.interfaces import DatasetAccess
from pausegate.connectors.registry import Connectors
from pausegate.temporal.client import connect
from pausegate.temporal.worker import build_urgent_worker, build_worker
from tests.support.faulty import FaultyAccess


class FaultConnectors(Connectors):
    """The configured connectors, with dataset access wrapped in ``FaultyAccess``."""

    def __init__(self, settings: Settings, *, ambiguous_rate: float = 0.0, seed: int = 0,
                 hold: list[str] | None = None, marker_dir: Path | None = None) -> None:
        super().__init__(settings)
        self._fault_options = {"ambiguous_rate": ambiguous_rate, "seed": seed, "hold": hold or [],
                               "marker_dir": marker_dir}
        self.faulty: dict[str, FaultyAccess] = {}

    def access(self, name: str) -> DatasetAccess:
        if name not in self.faulty:
            self.faulty[name] = FaultyAccess(super().access(name), **self._fault_options)  # type: ignore[arg-type]
        return self.faulty[name]


async def main(args: argparse.Namespace) -> None:
    settings = load_settings(args.config)
    client = await connect(settings.temporal, settings.encryption)
    connectors = FaultConnectors(settings, ambiguous_rate=args.ambiguous_rate, seed=args.seed, hold=args.hold,
                                 marker_dir=args.markers)
    worker = build_worker(client, connectors)
    # Connected and about to poll: from here on the worker can take tasks, so "up" is counted from now.
    args.ready.write_text(str(time.time()))
    if args.file_size_limit is not None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (args.file_size_limit, resource.RLIM_INFINITY))
    if args.regular_only:
        async with worker:
            await asyncio.Event().wait()
    # Both workers in the one process the tests kill: a crash takes the urgent steps down too.
    async with worker, build_urgent_worker(client, connectors):
        await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--ready", type=Path, required=True)
    parser.add_argument("--markers", type=Path, default=None)
    parser.add_argument("--hold", action="append", default=[])
    parser.add_argument("--ambiguous-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--regular-only", action="store_true")
    parser.add_argument("--file-size-limit", type=int, default=None)
    asyncio.run(main(parser.parse_args()))

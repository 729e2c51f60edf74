"""What encrypting history costs per payload: the payloads of a recorded pause (the worked example from
pause to resume: inputs, updates, activity results, the final state), converted from and to Python
values by the pydantic data converter, with and without the history codec.

Baseline: the same conversion without the codec, measured in the same run, alternating rounds.
Reported: the median round of each, the ratio, and the codec's own time per payload and per MB.

Usage: PYTHONPATH=. python bench/bench_codec.py [--rounds 15] [--repeat 20]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import time
from pathlib import Path

from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter

from pausegate.temporal.codec import ENCODING, Keyring, data_converter, new_key_text, parse_key

HISTORY = Path(__file__).resolve().parents[1] / "tests" / "histories" / "0.1.0" / "lifecycle-resumed.json"


def recorded_values() -> list[object]:
    """Every payload of the stored history as the Python value it carries (JSON values, not models:
    the baseline is the cheapest conversion, so the ratio is the codec's worst case)."""
    from tests.support.encryption import TEST_CODEC  # the stored history is sealed with the tests' keyring

    tree = json.loads(HISTORY.read_text())
    found: list[Payload] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            meta = node.get("metadata")
            if isinstance(meta, dict) and base64.b64decode(meta.get("encoding", "")) == ENCODING:
                found.append(Payload(metadata={k: base64.b64decode(v) for k, v in meta.items()},
                                     data=base64.b64decode(node.get("data", ""))))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(tree)
    opened = [TEST_CODEC.open(p) for p in found]
    return [pydantic_data_converter.payload_converter.from_payload(p) for p in opened]


async def round_trip(converter: object, values: list[object], repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        payloads = await converter.encode(values)  # type: ignore[attr-defined]
        await converter.decode(payloads, None)  # type: ignore[attr-defined]
    return time.perf_counter() - start


async def main(rounds: int, repeat: int) -> None:
    values = recorded_values()
    keyring = Keyring(keys={"k": parse_key(new_key_text(), "k")}, current="k",
                      identifier_key=parse_key(new_key_text(), "i"))
    encrypted = data_converter(keyring)
    plain_bytes = sum(len(p.SerializeToString()) for p in pydantic_data_converter.payload_converter.to_payloads(values))
    base, codec = [], []
    for _ in range(rounds):
        base.append(await round_trip(pydantic_data_converter, values, repeat))
        codec.append(await round_trip(encrypted, values, repeat))
    b, c = statistics.median(base), statistics.median(codec)
    n = len(values) * repeat
    print(f"{len(values)} payloads ({plain_bytes / 1024:.0f} KiB) from {HISTORY.name}, x{repeat} per round, "
          f"{rounds} rounds (median)")
    print(f"  pydantic only (baseline): {b * 1e6 / n:8.1f} us per payload encode+decode")
    print(f"  pydantic + history codec: {c * 1e6 / n:8.1f} us per payload   ratio {c / b:.2f}x")
    mb = plain_bytes * repeat / 2**20
    print(f"  the codec's own cost:     {(c - b) * 1e6 / n:8.1f} us per payload, {(c - b) / mb * 1e3:.2f} ms per MiB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.repeat))

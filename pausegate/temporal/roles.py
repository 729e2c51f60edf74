"""The roles a worker process takes (``pausegate worker --role``), apart from the worker's imports so the
command line can name them without loading the workflows."""

from __future__ import annotations

from enum import StrEnum


class WorkerRole(StrEnum):
    """What a worker runs."""

    ALL = "all"  # the workflows and the steps that prove a pause
    WORKFLOWS = "workflows"  # workflow tasks only
    PROOF = "proof"  # the steps that prove a pause (sealing, verification, who saw what, reports), no workflow
    URGENT = "urgent"  # the steps that stop harm (``URGENT_ACTIVITIES``), on the urgent queue


# A proof worker runs at most this many steps at once: they are CPU-bound (sealing, parsing logs), so more
# at once only makes every pause's proof later, and the memory of each is bounded by the step, not the fleet.
PROOF_CONCURRENCY = 8

# A proof worker lowers its own scheduling priority by this much (``os.nice``): when the cores are short,
# the kernel then runs the workflow tasks and the urgent steps first, and the proof steps take what is left.
PROOF_NICENESS = 10

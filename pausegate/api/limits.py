"""The API's bounds on actions (``create_app(limits=...)``): each actor's rate, and their share of a pause's queue."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ActionLimits:
    """The API's bounds on actions (``create_app(limits=...)``)."""

    rate_per_second: float = 5.0
    """Actions per actor per second, sustained (token bucket refill)."""
    burst: int = 120
    """Actions an actor may send at once (bucket size): a reviewer's script amending in bulk fits."""
    per_actor_queued: int = 100
    """Actions of one actor waiting for one pause; more are answered 429."""
    per_actor_in_flight: int = 1
    """Updates of one actor in flight on one pause: the other slots are always free for everyone else."""
    max_queued: int = 1000
    """Actions waiting for one pause, all actors together; more are answered 503."""
    refused_spacing: float = 0.1
    """Seconds an actor's next action on a pause waits after the workflow refused their last one there."""
    wait_seconds: float = 20.0
    """How long an action may wait for an update slot and for Temporal's capacity before it is answered
    503 with Retry-After (nothing applied); until then a refusal for lack of capacity is retried."""

    def __post_init__(self) -> None:
        if self.rate_per_second <= 0 or self.burst < 1 or self.per_actor_in_flight < 1:
            raise ValueError("rate_per_second, burst and per_actor_in_flight must be positive")
        if self.wait_seconds <= 0:
            raise ValueError("wait_seconds must be positive")
        if self.per_actor_queued < 0 or self.max_queued < 0 or self.refused_spacing < 0:
            raise ValueError("queue bounds and refused_spacing must not be negative")

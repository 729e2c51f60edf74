"""Each actor's rate limit, shared by every replica: one token bucket per actor in the API's database.

A request takes its token in one statement (an upsert that refills the bucket by the time since its
last use, on the database's clock, and spends one token if there is one), so an actor alternating
between replicas spends from the same bucket and cannot double their budget, and the row lock that
the upsert takes serialises concurrent requests of one actor. Buckets that have refilled are deleted
now and then: the same as no bucket. A row holding what the API never stores (tokens below zero or
above the burst, a last use that is not in the past) is reset to a full bucket and logged.
"""

from __future__ import annotations

import math
import time

import psycopg
import structlog
from psycopg_pool import PoolTimeout

from pausegate.api.rate_limits.limiter import Throttle
from pausegate.apidb.database import ApiDatabase
from pausegate.errors import StateUnavailable

log = structlog.get_logger(__name__)

# A bucket holds between 0 and ``burst`` tokens and was last used in the past: the API never stores
# anything else. A row outside those bounds was written by someone else (minus infinity tokens, a use
# in the year 294276): it is taken as tampering, counted as a full bucket (what deleting the row would
# give), and logged; never obeyed.
_BOUNDED = (
    "(b.tokens BETWEEN 0 AND %(burst)s::float8 AND isfinite(b.at) AND b.at <= clock_timestamp())"
)
_REFILLED = (
    f"CASE WHEN {_BOUNDED} THEN LEAST(%(burst)s::float8, b.tokens + "
    "GREATEST(0, EXTRACT(EPOCH FROM clock_timestamp() - b.at)::float8) * %(rate)s::float8) "
    "ELSE %(burst)s::float8 END"
)
_TAKE = f"""
WITH stored AS (SELECT NOT {_BOUNDED} AS forged FROM api_rate_buckets b WHERE b.actor = %(actor)s)
INSERT INTO api_rate_buckets AS b (actor, tokens, granted, at)
VALUES (%(actor)s, %(burst)s::float8 - 1, true, clock_timestamp())
ON CONFLICT (actor) DO UPDATE SET
    granted = {_REFILLED} >= 1,
    tokens = CASE WHEN {_REFILLED} >= 1 THEN {_REFILLED} - 1 ELSE {_REFILLED} END,
    at = clock_timestamp()
RETURNING granted, tokens, coalesce((SELECT forged FROM stored), false)
"""
_FORGET = (
    "DELETE FROM api_rate_buckets WHERE at < clock_timestamp() - make_interval(secs => %(seconds)s) "
    "AND tokens >= 0"
)


class PgRateLimiter:
    """A token bucket per actor in the API's database (a ``RateLimiter``), refusing as every limiter does
    (``Throttle``)."""

    FORGET_EVERY_SECONDS = 60.0

    def __init__(self, db: ApiDatabase, rate_per_second: float, burst: int) -> None:
        self.db = db
        self.rate = rate_per_second
        self.burst = burst
        self.throttle = Throttle(rate_per_second, burst)
        self._forgot = time.monotonic()

    @property
    def throttled(self) -> int:
        return self.throttle.throttled

    async def acquire(self, actor: str) -> None:
        """Spend one of ``actor``'s tokens in the shared bucket, or raise ``Throttled`` (429)."""
        params = {"actor": actor, "burst": float(self.burst), "rate": float(self.rate)}
        try:
            pool = await self.db.async_pool()
            async with pool.connection() as conn:
                row = await (await conn.execute(_TAKE, params)).fetchone()
                if time.monotonic() - self._forgot > self.FORGET_EVERY_SECONDS:
                    self._forgot = time.monotonic()
                    # A bucket idle for longer than a full refill takes is full again.
                    await conn.execute(_FORGET, {"seconds": math.ceil(self.burst / self.rate) + 1})
        except (psycopg.OperationalError, PoolTimeout) as exc:
            log.error("rate_limit_store_unavailable", error=str(exc)[:300])
            raise StateUnavailable() from None
        assert row is not None
        granted, tokens, forged = bool(row[0]), float(row[1]), bool(row[2])  # type: ignore[index]
        if forged:
            log.error("rate_bucket_out_of_bounds", actor=actor[:200],
                      detail="the bucket's row was changed outside the API; counted as a full bucket")
        if not granted:
            self.throttle.refuse(actor, tokens, time.monotonic())


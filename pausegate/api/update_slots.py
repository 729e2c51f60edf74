"""The update slots of each pause, shared by every replica: a semaphore of leased rows in the API's database.

Temporal refuses an eleventh update in flight on one workflow and degrades well before that
(TEMPORAL-NOTES.md). One replica keeps its own updates under ``max_in_flight`` with its fair queue
(``pausegate.api.limiter``); with several replicas, each update also holds one of the pause's
``max_in_flight`` rows in ``api_update_slots`` while it is in flight, so all replicas together stay
under the limit.

- A slot is taken by one upsert that claims a free slot number, chosen at random so that replicas
  claiming at once rarely pick the same (a row whose lease has expired counts as free); two replicas
  can never hold the same slot, and a replica that lost the race tries again at once.
- A replica renews the leases it holds every third of ``lease_seconds``. A replica that dies (killed,
  its host gone) stops renewing: its slots are free again ``lease_seconds`` later, never leaked.
- A row that expires further ahead than any replica leases (written outside the API: ``infinity``)
  counts as free and is logged; it cannot hold a pause's slots.
- A slot given back is announced (``NOTIFY pausegate_slots``); each replica listens, so a waiting
  update starts as soon as any replica frees a slot, with a poll as the fallback. Within a replica only
  the head of each pause's queue asks the database, so waiting costs one query per freed slot, not
  one per waiting request.

An update that still meets Temporal's refusal (a renewal that failed, replicas configured with
different limits, something else sending updates) is retried with backoff by the limiter.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, field

import psycopg
import structlog
from psycopg_pool import PoolTimeout

from pausegate.apidb.database import ApiDatabase
from pausegate.errors import Overloaded, StateUnavailable

log = structlog.get_logger(__name__)

CHANNEL = "pausegate_slots"

# A slot is held while its lease runs: until ``expires_at``, which a replica sets to at most
# ``lease_seconds`` from now (the replicas of one deployment share ``slot_lease_seconds``). A row that
# expires further ahead than twice that (``infinity``, next year) was not written by a replica: it is
# taken as tampering, counted as free, taken over by the next claim, and logged; never obeyed.
_HELD = (
    "{row}.expires_at > clock_timestamp() "
    "AND {row}.expires_at <= clock_timestamp() + make_interval(secs => %(bound)s)"
)
_FORGED = "{row}.expires_at > clock_timestamp() + make_interval(secs => %(bound)s)"
_CLAIM = f"""
WITH free AS (
    SELECT s FROM generate_series(0, %(max)s - 1) AS s
    WHERE NOT EXISTS (
        SELECT 1 FROM api_update_slots u
        WHERE u.pause = %(pause)s AND u.slot = s AND {_HELD.format(row="u")}
    )
    ORDER BY random() LIMIT 1
)
INSERT INTO api_update_slots AS t (pause, slot, lease, replica, actor, expires_at)
SELECT %(pause)s, s, %(lease)s, %(replica)s, %(actor)s, clock_timestamp() + make_interval(secs => %(ttl)s)
FROM free
ON CONFLICT (pause, slot) DO UPDATE SET
    lease = EXCLUDED.lease, replica = EXCLUDED.replica, actor = EXCLUDED.actor, expires_at = EXCLUDED.expires_at
WHERE NOT ({_HELD.format(row="t")})
RETURNING slot, (SELECT count(*) FROM api_update_slots f WHERE f.pause = %(pause)s AND {_FORGED.format(row="f")})
"""
_LIVE = (
    f"SELECT count(*) FROM api_update_slots u WHERE u.pause = %(pause)s AND u.slot < %(max)s "
    f"AND {_HELD.format(row='u')}"
)
_GIVE_BACK = (
    f"WITH gone AS (DELETE FROM api_update_slots WHERE lease = %s RETURNING pause) "
    f"SELECT pg_notify('{CHANNEL}', pause) FROM gone"
)
_FORGET_EXPIRED = (
    "DELETE FROM api_update_slots u WHERE u.expires_at < clock_timestamp() - interval '1 hour' "
    f"OR {_FORGED.format(row='u')} RETURNING (u.expires_at > clock_timestamp())"
)
_RENEW = (
    "UPDATE api_update_slots SET expires_at = clock_timestamp() + make_interval(secs => %s) "
    "WHERE lease = ANY(%s) AND replica = %s RETURNING lease"
)


@dataclass(frozen=True)
class Lease:
    """One slot of one pause, held by this replica."""

    pause: str
    slot: int
    lease: uuid.UUID


@dataclass
class _Waiting:
    turn: asyncio.Lock = field(default_factory=asyncio.Lock)
    freed: asyncio.Event = field(default_factory=asyncio.Event)
    users: int = 0


class SharedSlots:
    """``max_in_flight`` leased slots per pause in the shared database (one instance per replica)."""

    def __init__(
        self, db: ApiDatabase, max_in_flight: int, *, lease_seconds: float = 10.0, poll_seconds: float = 0.25
    ) -> None:
        self.db = db
        self.max_in_flight = max_in_flight
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self._held: dict[uuid.UUID, Lease] = {}
        self._waiting: dict[str, _Waiting] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.lost = 0
        """Leases found expired and taken over at renewal (this replica stalled longer than a lease)."""
        self.races = 0
        """Claims lost to another replica claiming the same slot at the same moment (tried again at once)."""
        self.woken = 0
        """Waits for a slot ended by a freed slot (here or announced by another replica)."""
        self.polled = 0
        """Waits for a slot ended by the poll: a notification lost or late, or a lease that expired."""

    @property
    def held(self) -> int:
        return len(self._held)

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start renewing leases and listening for freed slots (idempotent; also started by the first claim)."""
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._renew_forever(), name="slots-renew"),
                           asyncio.create_task(self._listen_forever(), name="slots-listen")]

    async def stop(self) -> None:
        """Stop, giving back every slot still held (a replica shutting down leaves none behind)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for lease in list(self._held.values()):
            with contextlib.suppress(Exception):
                await self.release(lease)

    # ------------------------------------------------------------ claiming

    async def try_acquire(self, pause: str, actor: str) -> Lease | None:
        """A free slot of ``pause`` for ``actor`` now, or None when all are held."""
        self.start()
        for _ in range(3):
            claim = asyncio.ensure_future(self._claim(pause, actor))
            try:
                lease, live = await asyncio.shield(claim)
            except asyncio.CancelledError:
                # The claim may commit after its caller went away: give the slot straight back.
                claim.add_done_callback(self._give_back_orphan)
                raise
            if lease is not None:
                return lease
            if live >= self.max_in_flight:
                return None
            self.races += 1  # a slot was free but another replica took it first
        return None

    async def acquire(self, pause: str, actor: str, deadline: float) -> Lease:
        """A slot of ``pause``, waiting (in this replica's order) until one is free or ``deadline`` (loop
        time) passes, then ``Overloaded`` (503, nothing applied)."""
        loop = asyncio.get_running_loop()
        waiting = self._waiting.get(pause)
        if waiting is None:
            waiting = self._waiting[pause] = _Waiting()
        waiting.users += 1
        try:
            try:
                async with asyncio.timeout_at(deadline):
                    async with waiting.turn:
                        while True:
                            waiting.freed.clear()
                            lease = await self.try_acquire(pause, actor)
                            if lease is not None:
                                return lease
                            try:
                                async with asyncio.timeout(self.poll_seconds):
                                    await waiting.freed.wait()
                                self.woken += 1
                            except TimeoutError:
                                self.polled += 1
            except TimeoutError:
                log.warning("update_slot_wait_exhausted", pause=pause, actor=actor, waited_until=deadline - loop.time())
                raise Overloaded("every update slot of this pause stayed busy; nothing was applied, retry shortly",
                                 retry_after=2) from None
        finally:
            waiting.users -= 1
            if waiting.users == 0:
                self._waiting.pop(pause, None)

    async def release(self, lease: Lease) -> None:
        """Give ``lease`` back and wake whoever waits for a slot of its pause (here at once, elsewhere by
        NOTIFY). A caller that goes away meanwhile does not stop it."""
        await asyncio.shield(self._release(lease))

    async def _release(self, lease: Lease) -> None:
        self._held.pop(lease.lease, None)
        try:
            pool = await self.db.async_pool()
            async with pool.connection() as conn:
                await conn.execute(_GIVE_BACK, (lease.lease,))
        except (psycopg.Error, PoolTimeout) as exc:
            # Not renewed from now on: the slot is free when its lease runs out.
            log.error("update_slot_not_released", pause=lease.pause, error=str(exc)[:300])
        waiting = self._waiting.get(lease.pause)
        if waiting is not None:
            waiting.freed.set()

    @property
    def bound(self) -> float:
        """Seconds ahead beyond which a slot's expiry is not a lease any replica took (see ``_HELD``)."""
        return 2.0 * self.lease_seconds

    async def live(self, pause: str) -> int:
        """Slots of ``pause`` held now by any replica."""
        pool = await self.db.async_pool()
        async with pool.connection() as conn:
            row = await (await conn.execute(
                _LIVE, {"pause": pause, "max": self.max_in_flight, "bound": self.bound})).fetchone()
        return int(row[0]) if row else 0  # type: ignore[index]

    async def _claim(self, pause: str, actor: str) -> tuple[Lease | None, int]:
        lease_id = uuid.uuid4()
        params = {"max": self.max_in_flight, "pause": pause, "lease": lease_id, "replica": self.db.replica,
                  "actor": actor[:500], "ttl": float(self.lease_seconds), "bound": self.bound}
        try:
            pool = await self.db.async_pool()
            async with pool.connection() as conn:
                row = await (await conn.execute(_CLAIM, params)).fetchone()
                if row is not None:
                    if row[1]:  # type: ignore[index]
                        log.error("update_slots_out_of_bounds", pause=pause, rows=int(row[1]),  # type: ignore[index]
                                  detail="slot rows expiring beyond any lease were written outside the API; "
                                  "counted as free")
                    lease = Lease(pause=pause, slot=int(row[0]), lease=lease_id)  # type: ignore[index]
                    self._held[lease_id] = lease
                    return lease, 0
                live = await (await conn.execute(_LIVE, params)).fetchone()
                return None, int(live[0]) if live else 0  # type: ignore[index]
        except (psycopg.Error, PoolTimeout) as exc:
            log.error("update_slots_unavailable", pause=pause, error=str(exc)[:300])
            raise StateUnavailable() from None

    def _give_back_orphan(self, claim: asyncio.Future[tuple[Lease | None, int]]) -> None:
        if claim.cancelled() or claim.exception() is not None:
            return
        lease, _ = claim.result()
        if lease is not None:
            task = asyncio.get_running_loop().create_task(self._release(lease))
            self._tasks.append(task)  # kept referenced until stop(); tiny and rare

    # ------------------------------------------------------------ background

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            if not self._held:
                await self._forget_expired()
                continue
            leases = list(self._held)
            try:
                pool = await self.db.async_pool()
                async with pool.connection() as conn:
                    rows = await (await conn.execute(
                        _RENEW, (float(self.lease_seconds), leases, self.db.replica))).fetchall()
            except (psycopg.Error, PoolTimeout) as exc:
                log.error("update_slots_not_renewed", held=len(leases), error=str(exc)[:300])
                continue
            renewed = {r[0] for r in rows}  # type: ignore[index]
            for lease_id in leases:
                if lease_id not in renewed and lease_id in self._held:
                    # Released meanwhile, or expired and taken over: Temporal's refusal is the backstop then.
                    if lease_id in self._held:
                        self.lost += 1
                        log.warning("update_slot_lease_lost", pause=self._held[lease_id].pause)
                        self._held.pop(lease_id, None)

    async def _forget_expired(self) -> None:
        # A dead replica's rows are taken over when their slot is claimed again; a pause nobody acts on
        # any more would keep them for ever, so whichever replica is idle deletes those long expired.
        with contextlib.suppress(psycopg.Error, PoolTimeout):
            pool = await self.db.async_pool()
            async with pool.connection() as conn:
                gone = await (await conn.execute(_FORGET_EXPIRED, {"bound": self.bound})).fetchall()
            forged = sum(1 for row in gone if row[0])  # type: ignore[index, misc]
            if forged:
                log.error("update_slots_out_of_bounds", rows=forged,
                          detail="slot rows expiring beyond any lease were written outside the API; deleted")

    async def _listen_forever(self) -> None:
        backoff = 1.0
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.db.dsn, autocommit=True, **self.db.connect_kwargs())  # type: ignore[arg-type]
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    backoff = 1.0
                    async for note in conn.notifies():
                        waiting = self._waiting.get(note.payload)
                        if waiting is not None:
                            waiting.freed.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the poll covers the gap; reconnect after a pause
                log.warning("update_slots_listener_reconnecting", error=str(exc)[:300], in_seconds=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

"""The S3 calls the evidence store makes, and the event loop they run on.

Every call goes through one aiobotocore client on one event loop thread owned by the store: the
store's protocol has synchronous reads and writes (called from the API's threads, the CLI and
activities) beside an asynchronous ``seal``, and an aiobotocore client belongs to the loop it was
made on. Synchronous callers wait on that loop; asynchronous ones await it without blocking theirs.

aiobotocore rather than aioboto3: the store needs only the low-level client (conditional puts,
object versions, Object Lock parameters), which aiobotocore is, kept in step with botocore by
aio-libs; aioboto3 adds a resource layer on top of it that nothing here uses.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from pausegate.errors import ConnectorError, EvidenceError, TargetRejectedError, TargetUnavailableError

if TYPE_CHECKING:
    from pausegate.config import S3EvidenceSettings

log = structlog.get_logger(__name__)

T = TypeVar("T")

# A stored object larger than this is not read: sealed chunks are a few MiB and documents smaller,
# so anything bigger was put there by someone else, and must not exhaust the reader's memory.
MAX_OBJECT_BYTES = 256 * 1024 * 1024
MAX_CONCURRENCY = 8
LOCK_MODE = "COMPLIANCE"
_MISSING = frozenset({"NoSuchKey", "NoSuchVersion", "404", "InvalidArgument", "400", "MethodNotAllowed", "405"})


class IoLoop:
    """An event loop on a daemon thread of its own, for one client's calls."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for it (from any thread but the loop's own)."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a synchronous evidence store call from the store's own loop would deadlock")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def acall(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop; the caller's loop goes on meanwhile."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def close(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            if threading.current_thread() is not self._thread:
                self._thread.join(timeout=10)
        if not self.loop.is_running() and not self.loop.is_closed():
            self.loop.close()


@dataclass
class Listing:
    """Versions of the objects under a prefix: newest first per name, as S3 lists them."""

    versions: dict[str, list[str]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)  # names whose newest version is a delete marker


def _code(exc: ClientError) -> tuple[str, int]:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return str(error.get("Code", "")), int(status)


class Bucket:
    """One bucket (and key prefix) of write-once, object-locked evidence objects."""

    def __init__(self, settings: S3EvidenceSettings, io: IoLoop) -> None:
        self.settings = settings
        self.name = settings.bucket
        self.retention = timedelta(days=settings.retention_days)
        self._io = io
        self._stack = AsyncExitStack()
        self._client: Any = io.call(self._open())

    async def _open(self) -> Any:
        s = self.settings
        credentials: dict[str, str] = {}
        if s.access_key_id is not None and s.secret_access_key is not None:
            credentials = {
                "aws_access_key_id": s.access_key_id.get_secret_value(),
                "aws_secret_access_key": s.secret_access_key.get_secret_value(),
            }
            if s.session_token is not None:
                credentials["aws_session_token"] = s.session_token.get_secret_value()
        config = AioConfig(
            retries={"mode": "standard", "max_attempts": s.max_attempts},
            max_pool_connections=MAX_CONCURRENCY * 2,
            connect_timeout=10,
            read_timeout=60,
            s3={"addressing_style": s.addressing_style},
        )
        return await self._stack.enter_async_context(
            get_session().create_client(
                "s3", region_name=s.region, endpoint_url=s.endpoint_url, config=config, **credentials
            )
        )

    async def aclose(self) -> None:
        await self._stack.aclose()

    def url(self, name: str = "") -> str:
        return f"s3://{self.name}/{name}"

    def _failed(self, what: str, name: str, exc: Exception) -> ConnectorError:
        """The error for a failed call: transient (network, timeouts, 5xx, throttling, retried by the
        activity) or final (the bucket refused: no such bucket, access denied). The text names the
        call and the object, never a credential."""
        message = f"evidence bucket: {what} {self.url(name)} failed: "
        if isinstance(exc, ClientError):
            code, status = _code(exc)
            message += f"{code or 'error'} (HTTP {status})"
            if status >= 500 or status in (0, 408, 429) or code in ("SlowDown", "RequestTimeout", "Throttling"):
                return TargetUnavailableError(message)
            return TargetRejectedError(message)
        return TargetUnavailableError(message + type(exc).__name__)

    def _lock(self) -> dict[str, Any]:
        return {"ObjectLockMode": LOCK_MODE, "ObjectLockRetainUntilDate": datetime.now(UTC) + self.retention}

    async def check_locked(self) -> None:
        """Refuse a bucket where objects could be overwritten or deleted: versioning and Object Lock
        must both be on (Object Lock needs versioning, and cannot be turned off once on)."""
        try:
            config = await self._client.get_object_lock_configuration(Bucket=self.name)
        except ClientError as exc:
            code, _ = _code(exc)
            if code == "ObjectLockConfigurationNotFoundError":
                raise EvidenceError(
                    f"evidence bucket {self.name!r} has no Object Lock: create it with Object Lock enabled "
                    "(docs/evidence-store.md)"
                ) from None
            raise self._failed("reading the Object Lock configuration of", "", exc) from None
        except BotoCoreError as exc:
            raise self._failed("reading the Object Lock configuration of", "", exc) from None
        if config.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled":
            raise EvidenceError(f"evidence bucket {self.name!r} has Object Lock disabled")

    async def policy(self) -> str | None:
        """The bucket's policy document as stored (JSON text); None if the bucket has none."""
        try:
            response = await self._client.get_bucket_policy(Bucket=self.name)
        except ClientError as exc:
            code, _ = _code(exc)
            if code == "NoSuchBucketPolicy":
                return None
            raise self._failed("reading the policy of", "", exc) from None
        except BotoCoreError as exc:
            raise self._failed("reading the policy of", "", exc) from None
        return str(response.get("Policy", "")) or None

    async def put_new(self, name: str, data: bytes, content_type: str = "application/octet-stream") -> str | None:
        """Create ``name`` with ``data``, locked; its version id, or None if the name exists already
        (the server refuses a second write: ``If-None-Match: *``)."""
        for attempt in range(5):
            try:
                response = await self._client.put_object(
                    Bucket=self.name, Key=name, Body=data, IfNoneMatch="*", ContentType=content_type, **self._lock()
                )
            except ClientError as exc:
                code, status = _code(exc)
                if status == 412 or code == "PreconditionFailed":
                    return None
                if status == 409 and attempt < 4:  # ConditionalRequestConflict: a concurrent write of the name
                    await asyncio.sleep(0.05 * 2**attempt)
                    continue
                raise self._failed("creating", name, exc) from None
            except BotoCoreError as exc:
                raise self._failed("creating", name, exc) from None
            return self._version_of(name, response)
        raise EvidenceError(f"evidence bucket: creating {self.url(name)} kept conflicting with another write")

    async def put_version(self, name: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        """A new version of ``name`` (signatures and chain heads only: older versions stay, locked)."""
        try:
            response = await self._client.put_object(
                Bucket=self.name, Key=name, Body=data, ContentType=content_type, **self._lock()
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._failed("writing", name, exc) from None
        return self._version_of(name, response)

    def _version_of(self, name: str, response: dict[str, Any]) -> str:
        version = response.get("VersionId")
        if not version or version == "null":
            raise EvidenceError(
                f"evidence bucket {self.name!r} returned no version id for {name}: versioning is off, so "
                "nothing keeps the object from being overwritten"
            )
        return str(version)

    async def get(self, name: str, version_id: str | None = None) -> bytes | None:
        """The bytes of ``name`` (its newest version, or ``version_id``); None if there is none."""
        extra = {"VersionId": version_id} if version_id else {}
        try:
            response = await self._client.get_object(Bucket=self.name, Key=name, **extra)
        except ClientError as exc:
            code, status = _code(exc)
            if code in _MISSING or str(status) in _MISSING:
                return None
            raise self._failed("reading", name, exc) from None
        except BotoCoreError as exc:
            raise self._failed("reading", name, exc) from None
        body = response["Body"]
        try:
            if int(response.get("ContentLength", 0)) > MAX_OBJECT_BYTES:
                raise EvidenceError(f"{self.url(name)} is larger than any evidence object ({MAX_OBJECT_BYTES} bytes)")
            async with body as stream:
                data: bytes = await stream.read()
        except (ClientError, BotoCoreError, OSError) as exc:
            raise self._failed("reading", name, exc) from None
        return data

    async def listing(self, prefix: str) -> Listing:
        """Every version of every object whose name starts with ``prefix``."""
        out = Listing()
        try:
            paginator = self._client.get_paginator("list_object_versions")
            async for page in paginator.paginate(Bucket=self.name, Prefix=prefix):
                for v in page.get("Versions", []):
                    out.versions.setdefault(v["Key"], []).append(v["VersionId"])
                for marker in page.get("DeleteMarkers", []):
                    if marker.get("IsLatest"):
                        out.deleted.add(marker["Key"])
        except (ClientError, BotoCoreError) as exc:
            raise self._failed("listing", prefix, exc) from None
        return out

    async def versions(self, name: str) -> list[str]:
        """The versions of exactly ``name``, newest first."""
        return (await self.listing(name)).versions.get(name, [])

    async def oldest(self, name: str) -> tuple[bytes, str] | None:
        """The first version of ``name`` (what the conditional create wrote: a version added later
        by anyone else with access to the bucket is newer) and its id; None if there is none."""
        versions = await self.versions(name)
        if not versions:
            return None
        data = await self.get(name, versions[-1])
        return None if data is None else (data, versions[-1])

    async def subdirectories(self, prefix: str) -> list[str]:
        """The names of the "directories" directly under ``prefix`` (each ending in ``/``)."""
        out: list[str] = []
        try:
            paginator = self._client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=self.name, Prefix=prefix, Delimiter="/"):
                out.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
        except (ClientError, BotoCoreError) as exc:
            raise self._failed("listing", prefix, exc) from None
        return out

"""A real S3-protocol server for the tests: moto's server, on a free port of this machine.

moto implements what the evidence store relies on (versioning, Object Lock in compliance mode,
``If-None-Match: *`` on PUT) over HTTP, so the store's client speaks to it exactly as to S3 or MinIO.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pausegate.config import S3EvidenceSettings

ACCESS_KEY = "AKIAEVIDENCETEST0001"
SECRET_KEY = "evidence-secret-never-shown-7f3a"
REGION = "us-east-1"
WORKER_PRINCIPAL = "arn:aws:iam::123456789012:user/pausegate-worker"


@dataclass(frozen=True)
class S3Server:
    """A running server and the means to make buckets on it."""

    endpoint_url: str

    def client(self) -> Any:
        """A plain boto3 client: what an insider with access to the bucket, or `aws s3`, would use."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def locked_bucket(self, *, lock: bool = True, policy: bool = True) -> str:
        """A new bucket with versioning, Object Lock and a policy letting only the worker write (as the docs
        say to create one)."""
        import json

        from pausegate.evidence.s3_policy import writers_policy

        name = f"evidence-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=lock)
        if policy:
            document = writers_policy(name, "", WORKER_PRINCIPAL)
            # moto applies a Deny to every caller (it reads neither its Principal nor its Condition), and matches
            # action names case-sensitively where S3 does not: in lower case the Deny reads to the store's check
            # as S3 would enforce it, and moto lets the tests' single identity write
            deny = document["Statement"][0]
            deny["Action"] = [action.lower() for action in deny["Action"]]
            self.client().put_bucket_policy(Bucket=name, Policy=json.dumps(document))
        return name

    def settings(self, bucket: str, *, prefix: str = "pausegate/", retention_days: int = 1) -> S3EvidenceSettings:
        return S3EvidenceSettings(
            bucket=bucket,
            prefix=prefix,
            region=REGION,
            endpoint_url=self.endpoint_url,
            access_key_id=ACCESS_KEY,  # type: ignore[arg-type]
            secret_access_key=SECRET_KEY,  # type: ignore[arg-type]
            retention_days=retention_days,
            addressing_style="path",
            writer_principal=WORKER_PRINCIPAL,
        )


@contextmanager
def running_s3_server() -> Iterator[S3Server]:
    """moto's threaded server on 127.0.0.1 and a port the OS chose, stopped afterwards."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield S3Server(endpoint_url=f"http://{host}:{port}")
    finally:
        server.stop()

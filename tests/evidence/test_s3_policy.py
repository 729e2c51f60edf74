"""The bucket policy a writing S3 store opens on: only the worker's principal may write under the prefix.

moto stores bucket policies but does not judge who may write as S3 does, so these tests hold the
store's check of the policy (read with GetBucketPolicy), not S3's enforcement of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pausegate.errors import EvidenceError
from pausegate.evidence.s3_policy import policy_problems, writers_policy
from pausegate.evidence.s3_store import S3EvidenceStore
from tests.support.s3_server import WORKER_PRINCIPAL, S3Server

PREFIX = "pausegate/"
MALLORY = "arn:aws:iam::123456789012:user/mallory"


def deny_all_but_worker(bucket: str) -> dict[str, Any]:
    statement: dict[str, Any] = writers_policy(bucket, PREFIX, WORKER_PRINCIPAL)["Statement"][0]
    # in lower case, as S3 reads actions and moto does not (it would apply the Deny to the tests' writes)
    return {**statement, "Action": [a.lower() for a in statement["Action"]]}


def with_policy(server: S3Server, statements: list[dict[str, Any]] | None) -> str:
    bucket = server.locked_bucket(policy=False)
    if statements is not None:
        server.client().put_bucket_policy(
            Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": statements}))
    return bucket


def open_store(server: S3Server, bucket: str, tmp_path: Path) -> S3EvidenceStore:
    return S3EvidenceStore(server.settings(bucket, prefix=PREFIX), tmp_path / "keys" / "signing.pem")


class TestOpening:
    def test_a_bucket_with_no_policy_is_refused(self, s3_server: S3Server, tmp_path: Path) -> None:
        bucket = with_policy(s3_server, None)
        with pytest.raises(EvidenceError, match=f"lets others than {WORKER_PRINCIPAL} write.*no bucket policy"):
            open_store(s3_server, bucket, tmp_path)

    def test_a_policy_letting_anyone_write_is_refused(self, s3_server: S3Server, tmp_path: Path) -> None:
        bucket = s3_server.locked_bucket(policy=False)
        s3_server.client().put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Statement": [
            deny_all_but_worker(bucket),
            {"Sid": "Open", "Effect": "Allow", "Principal": "*", "Action": "s3:Put*",
             "Resource": f"arn:aws:s3:::{bucket}/*"},
        ]}))
        with pytest.raises(EvidenceError, match="statement Open allows writing there to '\\*'"):
            open_store(s3_server, bucket, tmp_path)

    def test_a_policy_letting_another_principal_write_is_refused(self, s3_server: S3Server, tmp_path: Path) -> None:
        bucket = s3_server.locked_bucket(policy=False)
        s3_server.client().put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Statement": [
            deny_all_but_worker(bucket),
            {"Sid": "Mallory", "Effect": "Allow", "Principal": {"AWS": [WORKER_PRINCIPAL, MALLORY]},
             "Action": ["s3:GetObject", "s3:PutObject"], "Resource": f"arn:aws:s3:::{bucket}/{PREFIX}scope/*"},
        ]}))
        with pytest.raises(EvidenceError, match=f"statement Mallory allows writing there to AWS {MALLORY}"):
            open_store(s3_server, bucket, tmp_path)

    def test_a_policy_that_allows_only_the_worker_but_denies_nobody_is_refused(
        self, s3_server: S3Server, tmp_path: Path
    ) -> None:
        bucket = s3_server.locked_bucket(policy=False)
        s3_server.client().put_bucket_policy(Bucket=bucket, Policy=json.dumps(
            {"Statement": [writers_policy(bucket, PREFIX, WORKER_PRINCIPAL)["Statement"][1]]}))
        with pytest.raises(EvidenceError, match="no statement denies s3:PutObject"):
            open_store(s3_server, bucket, tmp_path)

    def test_the_policy_of_the_docs_opens_and_the_store_writes(self, s3_server: S3Server, tmp_path: Path) -> None:
        bucket = s3_server.locked_bucket()  # writers_policy, as docs/evidence-store.md shows it
        store = open_store(s3_server, bucket, tmp_path)
        try:
            ref = store.put_json("p/20261207T000000Z-a/report", {"status": "closed"})
            assert ref.version_id and ref.plants is None
        finally:
            store.close()

    def test_a_store_without_the_worker_principal_configured_is_refused(
        self, s3_server: S3Server, tmp_path: Path
    ) -> None:
        bucket = s3_server.locked_bucket()
        settings = s3_server.settings(bucket, prefix=PREFIX).model_copy(update={"writer_principal": None})
        with pytest.raises(EvidenceError, match=r"evidence\.s3\.writer_principal is not set"):
            S3EvidenceStore(settings, tmp_path / "keys" / "signing.pem")

    def test_a_reader_without_the_signing_key_opens_whatever_the_policy(
        self, s3_server: S3Server, tmp_path: Path
    ) -> None:
        bucket = with_policy(s3_server, None)
        reader = S3EvidenceStore(s3_server.settings(bucket, prefix=PREFIX), None)  # an auditor writes nothing
        reader.close()


class TestThePolicyRule:
    TARGET = ("b", PREFIX, WORKER_PRINCIPAL)

    def check(self, *statements: dict[str, Any]) -> list[str]:
        return policy_problems(json.dumps({"Statement": list(statements)}), *self.TARGET)

    def test_the_recommended_policy_passes(self) -> None:
        assert policy_problems(json.dumps(writers_policy(*self.TARGET)), *self.TARGET) == []

    def test_a_deny_by_not_principal_naming_only_the_worker_passes(self) -> None:
        assert self.check({"Effect": "Deny", "NotPrincipal": {"AWS": WORKER_PRINCIPAL}, "Action": "s3:*",
                           "Resource": "arn:aws:s3:::b/*"}) == []

    def test_a_deny_for_part_of_the_prefix_or_with_another_condition_does_not_count(self) -> None:
        partial = {"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
                   "Resource": "arn:aws:s3:::b/pausegate/scope/*",
                   "Condition": {"ArnNotEquals": {"aws:PrincipalArn": WORKER_PRINCIPAL}}}
        assert any("no statement denies" in p for p in self.check(partial))
        widened = {**partial, "Resource": "arn:aws:s3:::b/*",
                    "Condition": {"ArnNotEquals": {"aws:PrincipalArn": [WORKER_PRINCIPAL, MALLORY]}}}
        assert any("no statement denies" in p for p in self.check(widened))
        narrowed = {**partial, "Resource": "arn:aws:s3:::b/*", "Condition": {
            "ArnNotEquals": {"aws:PrincipalArn": WORKER_PRINCIPAL}, "Bool": {"aws:SecureTransport": "false"}}}
        assert any("no statement denies" in p for p in self.check(narrowed))

    def test_an_allow_elsewhere_in_the_bucket_or_for_reading_is_no_problem(self) -> None:
        deny = writers_policy(*self.TARGET)["Statement"][0]
        elsewhere = {"Effect": "Allow", "Principal": "*", "Action": "s3:PutObject",
                     "Resource": "arn:aws:s3:::b/inbox/*"}
        reading = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}
        assert self.check(deny, elsewhere, reading) == []

    def test_an_allow_by_not_action_or_wildcards_counts_as_writing(self) -> None:
        deny = writers_policy(*self.TARGET)["Statement"][0]
        everything = {"Sid": "All", "Effect": "Allow", "Principal": {"AWS": "*"}, "NotAction": "s3:GetObject",
                      "Resource": "*"}
        assert self.check(deny, everything) == ["statement All allows writing there to '*'"]
        wildcards = {"Sid": "Q", "Effect": "Allow", "Principal": {"AWS": MALLORY}, "Action": "s3:?utObject",
                     "Resource": "arn:aws:s3:::b/pause?ate/*"}
        assert self.check(deny, wildcards) == [
            f"statement Q allows writing there to AWS {MALLORY}"]

    def test_a_policy_that_does_not_parse_is_refused(self) -> None:
        assert policy_problems("{", *self.TARGET) == ["its policy is not JSON"]
        assert policy_problems("[]", *self.TARGET) == ["its policy has no Statement list"]

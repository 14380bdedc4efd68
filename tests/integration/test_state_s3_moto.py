"""The S3 state store under moto in-process (``mock_aws``): the StateStore contract and S3's failures."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra_mcp.errors import StateUnavailable
from infra_mcp.ports import StateStore
from infra_mcp.stores.state_s3 import S3StateStore
from tests.integration.state_contract import (
    PROJECT,
    FakeClock,
    RawBucket,
    S3FailureContract,
    StateStoreContract,
    make_in_process_moto_requests_atomic,
    make_moto_conditional_writes_atomic,
)

REGION = "us-east-1"
PREFIX = "team/state"


@pytest.fixture(scope="module")
def s3_client() -> Iterator[Any]:
    # One mock for the module (each test gets its own bucket): starting moto per test costs more than the test.
    with pytest.MonkeyPatch.context() as patch, mock_aws():
        make_moto_conditional_writes_atomic(patch)
        make_in_process_moto_requests_atomic(patch)
        yield boto3.client("s3", region_name=REGION)


@pytest.fixture
def bucket(s3_client: Any) -> str:
    name = f"state-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


class TestS3StateStoreInProcess(StateStoreContract, S3FailureContract):
    @pytest.fixture
    def make_store(self, bucket: str, clock: FakeClock) -> Callable[[], StateStore]:
        return lambda: S3StateStore(bucket, PREFIX, region=REGION, clock=clock)

    @pytest.fixture
    def raw(self, s3_client: Any, bucket: str) -> RawBucket:
        return RawBucket(s3_client, bucket, PREFIX)

    @pytest.fixture
    def s3_store_for(self, s3_client: Any) -> Callable[[str], StateStore]:
        return lambda name: S3StateStore(name, PREFIX, region=REGION, max_attempts=1)

    @pytest.fixture
    def iam_client(self, s3_client: Any) -> Any:
        return boto3.client("iam", region_name=REGION)


async def test_an_empty_prefix_keeps_projects_at_the_bucket_root(s3_client: Any, bucket: str) -> None:
    store = S3StateStore(bucket, "", region=REGION)
    await store.acquire_lock(PROJECT, owner="a", operation="op", lease_seconds=30)
    assert RawBucket(s3_client, bucket, "").keys() == [f"{PROJECT}/state.lock"]


def test_an_unknown_aws_profile_is_state_unavailable(s3_client: Any) -> None:
    with pytest.raises(StateUnavailable) as raised:
        S3StateStore("any-bucket", PREFIX, region=REGION, profile="no-such-profile-anywhere")
    assert raised.value.code == "STATE_004"
    assert raised.value.details["aws_error_code"] == "ProfileNotFound"


@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"])
def test_aws_endpoint_variables_meant_for_the_upstream_do_not_redirect_the_state_store(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, "http://127.0.0.1:9")
    store = S3StateStore("state-bucket", "p", region="us-east-1")
    assert "127.0.0.1" not in store.backend._client.meta.endpoint_url


def test_the_state_store_uses_its_own_endpoint_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    store = S3StateStore("state-bucket", "p", region="us-east-1", endpoint_url="http://127.0.0.1:4566")
    assert store.backend._client.meta.endpoint_url == "http://127.0.0.1:4566"

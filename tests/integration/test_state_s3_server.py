"""The S3 state store against a moto server on 127.0.0.1: the real HTTP path, with ``endpoint_url``."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from infra_mcp.ports import StateStore
from infra_mcp.stores.state_s3 import S3StateStore
from tests.integration.state_contract import (
    PROJECT,
    FakeClock,
    RawBucket,
    S3FailureContract,
    StateStoreContract,
    make_moto_conditional_writes_atomic,
    outcome,
)

REGION = "us-east-1"
PREFIX = "state"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """A moto server on a free port of 127.0.0.1, for this module only (each test gets its own bucket)."""
    # The server runs in this process, so patching moto's handlers reaches it too.
    with pytest.MonkeyPatch.context() as patch:
        make_moto_conditional_writes_atomic(patch)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@pytest.fixture(scope="module")
def s3_client(endpoint: str) -> Any:
    return boto3.client("s3", region_name=REGION, endpoint_url=endpoint)


@pytest.fixture
def bucket(s3_client: Any) -> str:
    name = f"state-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


class TestS3StateStoreOverHTTP(StateStoreContract, S3FailureContract):
    @pytest.fixture
    def make_store(self, bucket: str, endpoint: str, clock: FakeClock) -> Callable[[], StateStore]:
        return lambda: S3StateStore(bucket, PREFIX, region=REGION, endpoint_url=endpoint, clock=clock)

    @pytest.fixture
    def raw(self, s3_client: Any, bucket: str) -> RawBucket:
        return RawBucket(s3_client, bucket, PREFIX)

    @pytest.fixture
    def s3_store_for(self, endpoint: str) -> Callable[[str], StateStore]:
        return lambda name: S3StateStore(name, PREFIX, region=REGION, endpoint_url=endpoint, max_attempts=1)

    @pytest.fixture
    def iam_client(self, endpoint: str) -> Any:
        return boto3.client("iam", region_name=REGION, endpoint_url=endpoint)


async def test_an_unreachable_endpoint_is_state_unavailable() -> None:
    with socket.socket() as probe:  # a port nothing listens on: bound, then released
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = S3StateStore("any-bucket", PREFIX, region=REGION, endpoint_url=f"http://127.0.0.1:{port}", max_attempts=1)

    refused = await outcome(store.read(PROJECT))

    assert refused.code == "STATE_004"
    assert refused.details["endpoint_url"] == f"http://127.0.0.1:{port}"
    assert "Traceback" not in refused.message

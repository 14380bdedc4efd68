"""The state store in S3, with conditional writes (DESIGN §3). The only module that talks to AWS (botocore).

New keys are written with ``IfNoneMatch="*"`` and replacements with ``IfMatch=<etag read>``, so S3
itself arbitrates races: a lost one is ``412 PreconditionFailed`` (or ``409
ConditionalRequestConflict`` when two conditional writes overlap), never a silent overwrite.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# No type stubs ship with botocore; the client is typed Any below.
import botocore.config
import botocore.exceptions
import botocore.loaders
import botocore.session

from infra_mcp.domain.common import utcnow
from infra_mcp.errors import StateUnavailable
from infra_mcp.stores.versioned_state import Blob, Clock, PreconditionFailed, VersionedStateStore

_LOST_RACE = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}
_ABSENT = {"NoSuchKey", "404", "NotFound"}
_DENIED = {
    "AccessDenied",
    "403",
    "Forbidden",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "AccountProblem",
}
_WRONG_REGION = {"PermanentRedirect", "301", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"}
# Loading the S3 service model costs ~80 ms per botocore session; every store shares one loader
# (models only: credentials are still resolved per store, from its own session).
_MODELS = botocore.loaders.create_loader()


class S3Blobs:
    """:class:`~infra_mcp.stores.versioned_state.BlobBackend` over one bucket and key prefix."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        *,
        region: str,
        profile: str | None = None,
        endpoint_url: str | None = None,
        max_attempts: int = 3,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.region = region
        self.profile = profile
        self.endpoint_url = endpoint_url
        with self._errors("connect"):
            session = botocore.session.Session(profile=profile)
            session.register_component("data_loader", _MODELS)
            # AWS_ENDPOINT_URL(_S3) and endpoint_url in AWS config files are set to point the upstream
            # at a sandbox or emulator; they must not move the state too. Only our own setting does.
            session.set_config_variable("ignore_configured_endpoint_urls", True)
            # Clients are thread-safe (sessions are not): one client serves every worker thread.
            self._client: Any = session.create_client(
                "s3",
                region_name=region,
                endpoint_url=endpoint_url,
                config=botocore.config.Config(
                    connect_timeout=connect_timeout,
                    read_timeout=read_timeout,
                    retries={"max_attempts": max_attempts, "mode": "standard"},
                ),
            )

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def get(self, key: str) -> Blob | None:
        with self._errors("read", key):
            try:
                answer = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
            except botocore.exceptions.ClientError as exc:
                if _code(exc) in _ABSENT:
                    return None
                raise
            data: bytes = answer["Body"].read()
        return Blob(data=data, etag=answer["ETag"], modified=answer.get("LastModified"))

    def put(self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False) -> str:
        condition: dict[str, str] = {}
        if if_none_match:
            condition["IfNoneMatch"] = "*"
        elif if_match is not None:
            condition["IfMatch"] = if_match
        with self._errors("write", key):
            try:
                answer = self._client.put_object(
                    Bucket=self.bucket,
                    Key=self._key(key),
                    Body=data,
                    ContentType="application/json",
                    **condition,
                )
            except botocore.exceptions.ClientError as exc:
                code = _code(exc)
                # IfMatch on a key that vanished answers NoSuchKey: the version we read is gone all the same.
                if condition and (code in _LOST_RACE or (if_match is not None and code in _ABSENT)):
                    raise PreconditionFailed(key) from None
                raise
        return str(answer["ETag"])

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        condition = {"IfMatch": if_match} if if_match is not None else {}
        with self._errors("delete", key):
            try:
                self._client.delete_object(Bucket=self.bucket, Key=self._key(key), **condition)
            except botocore.exceptions.ClientError as exc:
                code = _code(exc)
                if code in _ABSENT:
                    return
                if condition and code in _LOST_RACE:
                    raise PreconditionFailed(key) from None
                raise

    def list(self, prefix: str) -> list[str]:
        full = self._key(prefix)
        keys: list[str] = []
        with self._errors("list", prefix):
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
                keys.extend(prefix + item["Key"][len(full) :] for item in page.get("Contents", []))
        return keys

    def prune(self, prefix: str) -> None:
        """S3 has no folders: nothing to remove."""

    @contextmanager
    def _errors(self, action: str, key: str = "") -> Iterator[None]:
        """Turn boto errors into STATE_004 saying what to check. No stack trace, no credentials."""
        try:
            yield
        except PreconditionFailed:
            raise
        except botocore.exceptions.ClientError as exc:
            raise self._unavailable(action, key, _code(exc)) from None
        except (botocore.exceptions.NoCredentialsError, botocore.exceptions.PartialCredentialsError) as exc:
            raise self._unavailable(action, key, type(exc).__name__) from None
        except botocore.exceptions.ProfileNotFound:
            raise self._unavailable(action, key, "ProfileNotFound") from None
        except (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError) as exc:
            raise self._unavailable(action, key, type(exc).__name__, unreachable=True) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self._unavailable(action, key, type(exc).__name__) from None

    def _unavailable(self, action: str, key: str, code: str, *, unreachable: bool = False) -> StateUnavailable:
        where = f"s3://{self.bucket}/{self._key(key)}"
        settings = "INFRA_MCP_STATE_LOCATION (or the project's state_location), INFRA_MCP_AWS_REGION"
        if code == "NoSuchBucket":
            advice = f"The bucket {self.bucket!r} does not exist. Create it, or fix {settings}."
        elif code in _DENIED:
            advice = (
                f"Access was denied. Check the AWS credentials (profile {self.profile or '(default chain)'}, "
                "set with INFRA_MCP_AWS_PROFILE) and that they allow s3:GetObject, s3:PutObject, "
                f"s3:DeleteObject and s3:ListBucket on {self.bucket!r} (bucket policy included)."
            )
        elif code in _WRONG_REGION:
            advice = f"The bucket is not in region {self.region!r}. Set INFRA_MCP_AWS_REGION to the bucket's region."
        elif code in ("NoCredentialsError", "PartialCredentialsError", "ProfileNotFound"):
            advice = (
                "No usable AWS credentials were found. Configure them (environment, ~/.aws, SSO) or set "
                "INFRA_MCP_AWS_PROFILE to an existing profile."
            )
        elif unreachable:
            endpoint = self.endpoint_url or f"the S3 endpoint of {self.region}"
            advice = (
                f"Could not reach {endpoint}. Check the network, INFRA_MCP_S3_ENDPOINT_URL and INFRA_MCP_AWS_REGION."
            )
        else:
            advice = f"Check the bucket name, the region and the credentials ({settings}, INFRA_MCP_AWS_PROFILE)."
        return StateUnavailable(
            f"State storage {where} refused to {action} ({code}). {advice}",
            details={
                "bucket": self.bucket,
                "prefix": self.prefix,
                "region": self.region,
                "endpoint_url": self.endpoint_url,
                "aws_error_code": code,
            },
        )


class S3StateStore(VersionedStateStore):
    """Versioned project state in an S3 bucket, under ``prefix``.

    Args:
        bucket: The bucket name.
        prefix: Key prefix for every project (may be empty).
        region: The bucket's region.
        profile: AWS profile to use (default: the standard credential chain).
        endpoint_url: Custom S3 endpoint (moto, MinIO, LocalStack).
        clock: Current time, for lock leases (tests inject a fake clock).
        max_attempts: Attempts per S3 call (retries with backoff on throttling and connection errors).
        connect_timeout: Seconds to wait for a connection to the endpoint.
        read_timeout: Seconds to wait for an answer on a connection.

    Raises:
        StateUnavailable: STATE_004 if the profile does not exist.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str,
        *,
        region: str,
        profile: str | None = None,
        endpoint_url: str | None = None,
        clock: Clock = utcnow,
        max_attempts: int = 3,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
    ) -> None:
        blobs = S3Blobs(
            bucket,
            prefix,
            region=region,
            profile=profile,
            endpoint_url=endpoint_url,
            max_attempts=max_attempts,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
        super().__init__(blobs, clock=clock)
        self.bucket = bucket
        self.prefix = blobs.prefix

    def __repr__(self) -> str:
        return f"S3StateStore('s3://{self.bucket}/{self.prefix}')"


def _code(exc: botocore.exceptions.ClientError) -> str:
    error = exc.response.get("Error", {})
    code = str(error.get("Code") or "")
    if code:
        return code
    return str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))

"""What the upstream (Cloud Control through an AWS MCP server) tells us, as plain models."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field


class OperationStatus(StrEnum):
    PENDING = "PENDING"
    IN_PROGRESS = "IN_PROGRESS"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    CANCEL_IN_PROGRESS = "CANCEL_IN_PROGRESS"
    CANCEL_COMPLETE = "CANCEL_COMPLETE"

    @property
    def done(self) -> bool:
        return self in (OperationStatus.SUCCESS, OperationStatus.FAILED, OperationStatus.CANCEL_COMPLETE)


class ProgressEvent(BaseModel):
    """Cloud Control's ProgressEvent (names snake_cased)."""

    type_name: str
    identifier: str | None = None
    request_token: str
    operation: Literal["CREATE", "UPDATE", "DELETE"]
    operation_status: OperationStatus
    event_time: datetime | None = None
    resource_model: dict[str, Any] | None = Field(default=None, description="Properties, when AWS returns them.")
    status_message: str | None = None
    error_code: str | None = Field(default=None, description="HandlerErrorCode, e.g. AlreadyExists, NotFound.")
    retry_after: datetime | None = None


class ResourceDescription(BaseModel):
    type_name: str
    identifier: str
    properties: dict[str, Any] = Field(default_factory=dict)


class CallerIdentity(BaseModel):
    account: str
    arn: str
    user_id: str


class UpstreamStatus(BaseModel):
    """What get_server_status reports."""

    kind: Literal["sandbox", "aws"]
    dialect: Literal["call_aws", "run_script"]
    experimental: bool = False
    target: str = Field(description="The command or URL used to reach the upstream (no secrets).")
    tool: str
    connected: bool
    healthy: bool
    circuit: Literal["closed", "open", "half_open"] = "closed"
    region: str
    caller: CallerIdentity | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    read_only: bool = Field(
        default=False, description="The upstream runs with READ_OPERATIONS_ONLY: execute_plan refuses changes."
    )
    mutation_consent: bool = Field(
        default=False,
        description="The upstream runs with REQUIRE_MUTATION_CONSENT (asks its own consent per change): "
        "execute_plan refuses changes.",
    )
    note: str = ""

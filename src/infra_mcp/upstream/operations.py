"""Cloud Control and STS calls as dialect-neutral requests, and their answers as our models.

A :class:`AwsCall` names an API operation and its parameters exactly as the AWS API spells them
(PascalCase; ``DesiredState`` and ``PatchDocument`` are JSON *strings*, as in the API). Each dialect
turns it into a tool call; both get back the AWS response as a dict, parsed here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from infra_mcp.domain.cloud import CallerIdentity, ProgressEvent, ResourceDescription
from infra_mcp.errors import UpstreamAWSError, ValidationFailed
from infra_mcp.upstream.commands import compact_json, validate_region

_TYPE_NAME = re.compile(r"^[A-Za-z0-9]{2,64}::[A-Za-z0-9]{2,64}::[A-Za-z0-9]{2,64}$")
# Cloud Control's ClientToken pattern, minus a leading '-' (see commands._flag_value).
_CLIENT_TOKEN = re.compile(r"^[A-Za-z0-9+/=][-A-Za-z0-9+/=]{0,127}$")


@dataclass(frozen=True)
class AwsCall:
    """One AWS API call, independent of how the upstream is asked to make it.

    Attributes:
        service: boto3/CLI service name (``cloudcontrol``, ``sts``).
        operation: API operation, PascalCase (``CreateResource``).
        region: AWS region.
        params: API parameters, PascalCase, ``None`` for absent.
        idempotent: Whether repeating the call cannot do harm (reads, or mutations with a client token).
    """

    service: str
    operation: str
    region: str
    params: dict[str, Any] = field(default_factory=dict)
    idempotent: bool = True

    def present_params(self) -> dict[str, Any]:
        return {k: v for k, v in self.params.items() if v is not None}


def _type_name(type_name: str) -> str:
    if not isinstance(type_name, str) or not _TYPE_NAME.fullmatch(type_name):
        raise ValidationFailed(
            f"{type_name!r} is not a resource type name. Use one like 'AWS::EC2::VPC'.", details={"field": "type_name"}
        )
    return type_name


def _client_token(token: str | None) -> str | None:
    if token is not None and not _CLIENT_TOKEN.fullmatch(token):
        raise ValidationFailed(
            "client_token is not valid. Use 1-128 characters of letters, digits, '-', '+', '/', '=', not "
            "starting with '-'.",
            details={"field": "client_token"},
        )
    return token


def _non_empty(name: str, value: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationFailed(f"{name} is empty or not a string. Pass a non-empty string.", details={"field": name})
    return value


def create_resource(type_name: str, desired_state: dict[str, Any], *, region: str, client_token: str | None) -> AwsCall:
    return AwsCall(
        "cloudcontrol",
        "CreateResource",
        validate_region(region),
        {
            "TypeName": _type_name(type_name),
            "DesiredState": compact_json(desired_state),
            "ClientToken": _client_token(client_token),
        },
        idempotent=client_token is not None,
    )


def get_resource(type_name: str, identifier: str, *, region: str) -> AwsCall:
    return AwsCall(
        "cloudcontrol",
        "GetResource",
        validate_region(region),
        {"TypeName": _type_name(type_name), "Identifier": _non_empty("identifier", identifier)},
    )


def update_resource(
    type_name: str, identifier: str, patch: list[dict[str, Any]], *, region: str, client_token: str | None
) -> AwsCall:
    if not isinstance(patch, list) or not all(isinstance(op, dict) for op in patch):
        raise ValidationFailed(
            "patch must be an RFC 6902 list of operations. Pass a list like "
            '[{"op": "replace", "path": "/CidrBlock", "value": "10.0.0.0/16"}].',
            details={"field": "patch"},
        )
    return AwsCall(
        "cloudcontrol",
        "UpdateResource",
        validate_region(region),
        {
            "TypeName": _type_name(type_name),
            "Identifier": _non_empty("identifier", identifier),
            "PatchDocument": compact_json(patch),
            "ClientToken": _client_token(client_token),
        },
        idempotent=client_token is not None,
    )


def delete_resource(type_name: str, identifier: str, *, region: str, client_token: str | None) -> AwsCall:
    return AwsCall(
        "cloudcontrol",
        "DeleteResource",
        validate_region(region),
        {
            "TypeName": _type_name(type_name),
            "Identifier": _non_empty("identifier", identifier),
            "ClientToken": _client_token(client_token),
        },
        idempotent=client_token is not None,
    )


def list_resources(type_name: str, *, region: str, next_token: str | None) -> AwsCall:
    return AwsCall(
        "cloudcontrol",
        "ListResources",
        validate_region(region),
        {"TypeName": _type_name(type_name), "NextToken": next_token},
    )


def get_request_status(request_token: str, *, region: str) -> AwsCall:
    return AwsCall(
        "cloudcontrol",
        "GetResourceRequestStatus",
        validate_region(region),
        {"RequestToken": _non_empty("request_token", request_token)},
    )


def get_caller_identity(*, region: str) -> AwsCall:
    return AwsCall("sts", "GetCallerIdentity", validate_region(region), {})


# ---- answers -------------------------------------------------------------------------------


def malformed(operation: str, what: str) -> UpstreamAWSError:
    """The upstream answered, but not in a shape we understand."""
    return UpstreamAWSError(
        f"The upstream's answer to {operation} was not understood ({what}). Check that the upstream speaks the "
        "configured dialect.",
        details={"reason": "malformed_answer", "operation": operation, "aws_error_code": None, "aws_message": what},
    )


def _json_object(value: Any, *, operation: str, what: str) -> dict[str, Any] | None:
    """Cloud Control sends ResourceModel/Properties as JSON strings; accept a dict too."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise malformed(operation, f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise malformed(operation, f"{what} is not a JSON object")
    return value


def progress_event(response: dict[str, Any], *, operation: str) -> ProgressEvent:
    """``{"ProgressEvent": {...}}`` (PascalCase) -> :class:`ProgressEvent`."""
    raw = response.get("ProgressEvent")
    if not isinstance(raw, dict):
        raise malformed(operation, "no ProgressEvent")
    try:
        return ProgressEvent(
            type_name=raw["TypeName"],
            identifier=raw.get("Identifier"),
            request_token=raw["RequestToken"],
            operation=raw["Operation"],
            operation_status=raw["OperationStatus"],
            event_time=raw.get("EventTime"),
            resource_model=_json_object(raw.get("ResourceModel"), operation=operation, what="ResourceModel"),
            status_message=raw.get("StatusMessage"),
            error_code=raw.get("ErrorCode"),
            retry_after=raw.get("RetryAfter"),
        )
    except (KeyError, ValidationError) as exc:
        raise malformed(operation, f"ProgressEvent incomplete: {type(exc).__name__}") from None


def resource_description(raw: Any, *, type_name: str, operation: str) -> ResourceDescription:
    """``{"Identifier", "Properties": "<json>"}`` -> :class:`ResourceDescription`."""
    if not isinstance(raw, dict) or not isinstance(raw.get("Identifier"), str):
        raise malformed(operation, "ResourceDescription without Identifier")
    properties = _json_object(raw.get("Properties"), operation=operation, what="Properties") or {}
    return ResourceDescription(type_name=type_name, identifier=raw["Identifier"], properties=properties)


def resource_page(
    response: dict[str, Any], *, type_name: str, pagination_token: str | None
) -> tuple[list[ResourceDescription], str | None]:
    raw = response.get("ResourceDescriptions", [])
    if not isinstance(raw, list):
        raise malformed("ListResources", "ResourceDescriptions is not a list")
    items = [resource_description(r, type_name=type_name, operation="ListResources") for r in raw]
    token = response.get("NextToken") or pagination_token
    return items, token if isinstance(token, str) and token else None


def caller_identity(response: dict[str, Any]) -> CallerIdentity:
    try:
        return CallerIdentity(account=response["Account"], arn=response["Arn"], user_id=response["UserId"])
    except (KeyError, ValidationError):
        raise malformed("GetCallerIdentity", "Account/Arn/UserId missing") from None

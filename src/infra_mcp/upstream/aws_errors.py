"""Map an AWS error answered by the upstream onto infra-mcp's errors (DESIGN §7).

AWS's own code and message always travel in ``details`` so the executor and the agent
can still see exactly what AWS said.
"""

from __future__ import annotations

import re
from typing import Any

from infra_mcp.errors import AccessDenied, InfraError, NotFound, UpstreamAWSError, UpstreamThrottled
from infra_mcp.upstream.connection import EndpointLost, EndpointUnreachable, TransportFailure

NOT_FOUND_CODES = frozenset({"ResourceNotFoundException", "NotFound", "NotFoundException", "NoSuchEntity"})

ACCESS_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "UnauthorizedAccess",
        "NotAuthorized",
        "AuthFailure",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "InvalidAccessKeyId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "MissingAuthenticationToken",
        "RequestExpired",
    }
)

THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "TooManyRequests",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
        "ProvisionedThroughputExceededException",
    }
)

# Server-side failures where AWS may or may not have acted: retried only when a retry is idempotent.
TRANSIENT_CODES = frozenset(
    {
        "InternalFailure",
        "InternalError",
        "InternalServerError",
        "InternalServiceError",
        "ServiceInternalErrorException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "NetworkFailureException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)

_CLI_ERROR_PREFIX = re.compile(r"^An error occurred \((?P<code>[^)]*)\)(?: when calling the \w+ operation)?[^:]*: ?")


# botocore's connection errors, as the AWS CLI prints them. They are no refusal by AWS: nothing (or no
# answer) reached it, so they are transport failures, retried and reported as AWS_MCP_001.
_ENDPOINT_UNREACHABLE = re.compile(
    r"Could not connect to the endpoint URL|Connect timeout on endpoint URL|Failed to connect to proxy URL"
    r"|SSL validation failed for|Name or service not known|Temporary failure in name resolution",
    re.IGNORECASE,
)
_ENDPOINT_LOST = re.compile(
    r"Read timeout on endpoint URL|Connection was closed before we received a valid response|Connection reset by peer",
    re.IGNORECASE,
)


def endpoint_failure(text: str) -> TransportFailure | None:
    """The transport failure an upstream's error text describes, or None if AWS itself answered."""
    line = text.removeprefix("Error while executing the command: ")[:500]
    if _ENDPOINT_UNREACHABLE.search(text):
        return EndpointUnreachable(f"The upstream could not reach the AWS endpoint ({line}).")
    if _ENDPOINT_LOST.search(text):
        return EndpointLost(f"The AWS endpoint did not answer ({line}).")
    return None


def split_cli_error(text: str) -> tuple[str | None, str]:
    """Split botocore's ``An error occurred (Code) when calling the Op operation: msg`` into (code, msg)."""
    match = _CLI_ERROR_PREFIX.match(text)
    if match is None:
        return None, text
    return match.group("code") or None, text[match.end() :]


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` is an AWS server-side failure worth retrying when the call is idempotent."""
    return isinstance(error, UpstreamAWSError) and bool(error.details.get("transient"))


def map_aws_error(
    code: str | None,
    message: str,
    *,
    status_code: int | None = None,
    operation: str | None = None,
) -> InfraError:
    """Turn AWS's error code and message into the matching infra-mcp error.

    Args:
        code: AWS's error code (``ResourceNotFoundException``, ``ThrottlingException`` ...).
        message: AWS's message, kept verbatim in ``details["aws_message"]``.
        status_code: The HTTP status AWS answered with, if known.
        operation: The API operation (``GetResource``), for the message.

    Returns:
        ``NotFound`` (RESOURCE_001), ``AccessDenied`` (AUTH_001), ``UpstreamThrottled``
        (AWS_MCP_003) or ``UpstreamAWSError`` (AWS_MCP_002); ``details["transient"]`` marks
        AWS-side failures that may succeed if repeated.
    """
    details: dict[str, Any] = {"aws_error_code": code, "aws_message": message}
    if status_code is not None:
        details["aws_status_code"] = status_code
    if operation:
        details["operation"] = operation
    where = f" on {operation}" if operation else ""
    if code in NOT_FOUND_CODES:
        return NotFound(
            f"AWS says the resource does not exist ({code}){where}: {message}. Check its identifier and region; "
            "if it was removed outside infra-mcp, make a new plan so the state matches AWS again.",
            details=details,
        )
    if code in ACCESS_DENIED_CODES:
        return AccessDenied(
            f"AWS refused the credentials or permissions ({code}){where}: {message}. "
            "Check the upstream's AWS profile/role and its IAM permissions.",
            details=details,
        )
    if code in THROTTLING_CODES or status_code == 429:
        return UpstreamThrottled(
            f"AWS throttled the request ({code}){where} even after retries; wait and try again.", details=details
        )
    if code in TRANSIENT_CODES or (status_code is not None and status_code >= 500):
        details["transient"] = True
    advice = (
        "It is a failure on AWS's side: retry in a minute."
        if details.get("transient")
        else "Fix what AWS's message names (details.aws_error_code is its code), then try again."
    )
    return UpstreamAWSError(
        f"AWS refused the request ({code or 'unknown error'}){where}: {message}. {advice}", details=details
    )

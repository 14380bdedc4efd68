"""The errors the simulated Cloud Control answers with, named as AWS names them.

Cloud Control reports problems two ways, and the sandbox keeps them apart as AWS does:

* an *API exception* refuses the call itself (``ResourceNotFoundException``, ``ThrottlingException``,
  ``TypeNotFoundException``, ...): :class:`CloudControlError`, raised synchronously;
* a *handler error* ends an accepted asynchronous request ``FAILED`` with a ``HandlerErrorCode``
  (``InvalidRequest``, ``AlreadyExists``, ``NotFound``, ``ServiceInternalError``, ...) inside the
  ``ProgressEvent``: see :class:`HandlerErrorCode`.
"""

from __future__ import annotations

from enum import StrEnum

# Server-side API exceptions answer 5xx; every other Cloud Control exception is a 400.
_SERVER_ERRORS = frozenset(
    {"ServiceInternalErrorException", "HandlerInternalFailureException", "NetworkFailureException", "InternalFailure"}
)


class CloudControlError(Exception):
    """A Cloud Control API exception.

    Args:
        code: AWS's exception name, e.g. ``ResourceNotFoundException``.
        message: AWS-like message.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @property
    def status_code(self) -> int:
        """The HTTP status AWS answers this exception with."""
        return 500 if self.code in _SERVER_ERRORS else 400


class HandlerErrorCode(StrEnum):
    """The ``ErrorCode`` of a FAILED ProgressEvent (the resource handler's verdict)."""

    INVALID_REQUEST = "InvalidRequest"
    ALREADY_EXISTS = "AlreadyExists"
    NOT_FOUND = "NotFound"
    NOT_UPDATABLE = "NotUpdatable"
    SERVICE_INTERNAL_ERROR = "ServiceInternalError"
    GENERAL_SERVICE_EXCEPTION = "GeneralServiceException"
    RESOURCE_CONFLICT = "ResourceConflict"


def type_not_found(type_name: str) -> CloudControlError:
    return CloudControlError("TypeNotFoundException", f"The type '{type_name}' cannot be found.")


def resource_not_found(type_name: str, identifier: str) -> CloudControlError:
    return CloudControlError(
        "ResourceNotFoundException", f"Resource of type '{type_name}' with identifier '{identifier}' was not found."
    )


def invalid_request(message: str) -> CloudControlError:
    return CloudControlError("InvalidRequestException", message)


def throttled() -> CloudControlError:
    return CloudControlError("ThrottlingException", "Rate exceeded (infra-mcp sandbox simulated throttling).")

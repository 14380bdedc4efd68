"""The errors an agent can see, each with a stable code (DESIGN §8).

Every error raised on purpose anywhere in infra-mcp is an :class:`InfraError`. The
server turns it into a tool error whose text is a JSON object with ``code``,
``message`` (what happened and what to do next), ``request_id``, ``timestamp`` and
``details``. Anything else that escapes is a bug: the agent sees ``INTERNAL_001``
and no stack trace.

Codes (the seed's, extended):

==================  =============================================================
``VALIDATION_001``  invalid input (ids, documents, arguments)
``AUTH_001``        the acting user's role does not allow the action
``RESOURCE_001``    something named does not exist (project, resource, plan, version)
``CONFLICT_001``    something with that name already exists / the action conflicts
``STATE_001``       state file corrupted (unparsable, checksum mismatch)
``STATE_002``       state write lost a race (another writer moved the serial)
``STATE_003``       state is locked by another operation
``STATE_004``       state storage unreachable or refusing (no bucket, access denied)
``AWS_MCP_001``     upstream AWS MCP server unreachable, dead or timed out
``AWS_MCP_002``     the upstream answered with an AWS error (AWS code kept in details)
``AWS_MCP_003``     throttled by AWS even after retries
``AWS_MCP_004``     the upstream is configured to refuse changes (read-only, or consent per change)
``PLAN_001``        plan is stale: the state moved since it was made
``PLAN_002``        plan content no longer matches its approved fingerprint
``PLAN_003``        plan is not in a status that allows the action
``APPROVAL_001``    approval expired
``APPROVAL_002``    approval required / refused (declined, self-approval forbidden, ...)
``APPROVAL_003``    human confirmation needed but the client cannot show prompts
``INTEGRITY_001``   a plan or approval fails its server-key check (edited outside infra-mcp)
``SERVER_001``      the server is stopping: the call was not run (call again)
``INTERNAL_001``    a bug in infra-mcp
==================  =============================================================
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

# A sentence mark followed by the period that joins the next sentence ("state.. Fix", "VpcId?. Fix"):
# messages are assembled from parts that often end in their own mark. An ellipsis ("...") is kept.
_DOUBLED_STOP = re.compile(r"(?<!\.)([.?!])\.(?=\s|$)")


def tidy_message(message: str) -> str:
    """``message`` with each doubled sentence stop made single ("state.. Fix" -> "state. Fix")."""
    return _DOUBLED_STOP.sub(r"\1", message)


class InfraError(Exception):
    """Base of every deliberate infra-mcp error.

    Args:
        message: What happened and what the caller should do next.
        details: Machine-readable context (never secrets).
    """

    code: ClassVar[str] = "INTERNAL_001"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        message = tidy_message(message)
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = dict(details or {})

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class ValidationFailed(InfraError):
    """Invalid input. ``details["findings"]`` lists every problem with its location."""

    code = "VALIDATION_001"


class AccessDenied(InfraError):
    code = "AUTH_001"


class NotFound(InfraError):
    code = "RESOURCE_001"


class AlreadyExists(InfraError):
    code = "CONFLICT_001"


class StateCorrupted(InfraError):
    """The stored state cannot be trusted. ``details["newest_valid_version"]`` names what to restore."""

    code = "STATE_001"


class StateConflict(InfraError):
    code = "STATE_002"


class StateLocked(InfraError):
    code = "STATE_003"


class StateUnavailable(InfraError):
    code = "STATE_004"


class UpstreamUnavailable(InfraError):
    code = "AWS_MCP_001"


class UpstreamAWSError(InfraError):
    """AWS refused an operation. ``details`` keeps ``aws_error_code`` and ``aws_message``."""

    code = "AWS_MCP_002"

    @property
    def aws_error_code(self) -> str | None:
        value = self.details.get("aws_error_code")
        return str(value) if value is not None else None


class UpstreamThrottled(UpstreamAWSError):
    code = "AWS_MCP_003"


class UpstreamRefusesChanges(InfraError):
    """The upstream will refuse every change as configured (``READ_OPERATIONS_ONLY``, ``REQUIRE_MUTATION_CONSENT``).

    Raised before anything is sent; ``details["reason"]`` is ``read_only`` or ``mutation_consent``.
    """

    code = "AWS_MCP_004"


class PlanStale(InfraError):
    code = "PLAN_001"


class PlanTampered(InfraError):
    code = "PLAN_002"


class PlanStatusInvalid(InfraError):
    code = "PLAN_003"


class ApprovalExpired(InfraError):
    code = "APPROVAL_001"


class ApprovalRequired(InfraError):
    code = "APPROVAL_002"


class ElicitationUnsupported(InfraError):
    code = "APPROVAL_003"


class IntegrityFailed(InfraError):
    """A stored plan, approval or audit entry does not carry the MAC the server key gives it.

    Only an edit outside infra-mcp (the database, a restored file) produces this; nothing that
    fails it is ever executed.
    """

    code = "INTEGRITY_001"


class ServerStopping(InfraError):
    """The HTTP server began a graceful stop before this call arrived: nothing was done."""

    code = "SERVER_001"


ALL_CODES: tuple[str, ...] = tuple(
    sorted(
        {
            cls.code
            for cls in (
                InfraError,
                ValidationFailed,
                AccessDenied,
                NotFound,
                AlreadyExists,
                StateCorrupted,
                StateConflict,
                StateLocked,
                StateUnavailable,
                UpstreamUnavailable,
                UpstreamAWSError,
                UpstreamThrottled,
                UpstreamRefusesChanges,
                PlanStale,
                PlanTampered,
                PlanStatusInvalid,
                ApprovalExpired,
                ApprovalRequired,
                ElicitationUnsupported,
                IntegrityFailed,
                ServerStopping,
            )
        }
    )
)

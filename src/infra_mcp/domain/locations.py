"""Which state locations a project may use (DESIGN §3): pure rules over already-resolved locations.

A location is an S3 bucket and key prefix, or an absolute folder path. The operator allows a few
roots (the default location plus ``INFRA_MCP_ALLOWED_STATE_LOCATIONS``); a project's location must
be one of them or lie inside one. Resolving a folder (``~``, ``..``, symlinks) is I/O and happens
in the store factory before these rules run; here ``..`` is simply never inside anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath

from infra_mcp.errors import ValidationFailed


@dataclass(frozen=True)
class S3Location:
    """``s3://bucket/prefix`` (``prefix`` without leading or trailing ``/``, possibly empty)."""

    bucket: str
    prefix: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.prefix.split("/")) if self.prefix else ()


Location = S3Location | PurePath


def is_within(candidate: Location, root: Location) -> bool:
    """True if ``candidate`` is ``root`` or lies inside it.

    Comparison is by whole segments, so ``s3://b/team`` holds ``s3://b/team/x`` but not
    ``s3://b/team-evil``, and ``/srv/state`` does not hold ``/srv/state-other``. A location with a
    ``..`` segment is never inside anything (it has not been resolved).
    """
    if isinstance(candidate, S3Location) or isinstance(root, S3Location):
        if not (isinstance(candidate, S3Location) and isinstance(root, S3Location)):
            return False
        if candidate.bucket != root.bucket or ".." in candidate.segments:
            return False
        return candidate.segments[: len(root.segments)] == root.segments
    if not (candidate.is_absolute() and root.is_absolute()) or ".." in candidate.parts:
        return False
    return candidate.parts[: len(root.parts)] == root.parts


def require_allowed(candidate: Location, allowed: Sequence[Location], *, shown: str) -> None:
    """Refuse a state location outside every allowed root.

    Args:
        candidate: The resolved location a project asks for.
        allowed: The resolved roots the operator allows (the default location first).
        shown: The location as the caller wrote it, for the message.

    Raises:
        ValidationFailed: VALIDATION_001 naming the allowed roots.
    """
    if any(is_within(candidate, root) for root in allowed):
        return
    roots = [str(root) for root in allowed]
    raise ValidationFailed(
        f"State location {shown!r} is not allowed on this server. A project may keep its state only in the "
        f"default location or inside one the operator allows: {', '.join(roots)}. Leave state_location unset, "
        "pick one of those, or ask the operator to add it to INFRA_MCP_ALLOWED_STATE_LOCATIONS.",
        details={"field": "state_location", "value": shown, "resolved": str(candidate), "allowed": roots},
    )

"""Picks each project's state store from its state location (DESIGN §3).

A location is ``s3://bucket/prefix`` (S3) or a folder path (local). Stores are cached per location,
so every project sharing a location shares one store (and one boto3 client).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from infra_mcp.domain.locations import S3Location, require_allowed
from infra_mcp.domain.project import Project
from infra_mcp.errors import ValidationFailed
from infra_mcp.ports import StateStore
from infra_mcp.settings import Settings
from infra_mcp.stores.state_local import LocalStateStore
from infra_mcp.stores.state_scope import IncarnationScope

# S3's rules for general purpose bucket names: 3-63 of a-z 0-9 . -, starting and ending alphanumeric.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


Location = S3Location | Path


def parse_location(value: str) -> Location:
    """Parse a state location: ``s3://bucket[/prefix]`` or a folder path (``~`` expanded, made absolute).

    Raises:
        ValidationFailed: VALIDATION_001 for anything else (no bucket, another scheme, control characters).
    """
    if not isinstance(value, str) or not value.strip():
        raise _invalid(value, "it is empty")
    if _CONTROL.search(value):
        raise _invalid(value, "it contains control characters")
    scheme = _SCHEME.match(value)
    if scheme is None:
        return Path(value).expanduser().absolute()
    if scheme.group(1).lower() != "s3":
        raise _invalid(value, f"the scheme {scheme.group(1)!r} is not supported")
    parts = urlsplit(value)
    if not parts.netloc:
        raise _invalid(value, "it names no bucket")
    if not _BUCKET.fullmatch(parts.netloc):
        raise _invalid(value, f"{parts.netloc!r} is not a valid bucket name")
    if parts.query or parts.fragment:
        raise _invalid(value, "it has a query or fragment")
    prefix = parts.path.strip("/")
    if prefix and any(segment in ("", ".", "..") for segment in prefix.split("/")):
        raise _invalid(value, "its prefix has empty, '.' or '..' segments")
    return S3Location(bucket=parts.netloc, prefix=prefix)


def _invalid(value: object, why: str) -> ValidationFailed:
    shown = value.encode("unicode_escape").decode()[:200] if isinstance(value, str) else repr(value)
    return ValidationFailed(
        f"State location {shown!r} is not usable: {why}. Use a folder path or s3://bucket/prefix.",
        details={"field": "state_location", "value": shown},
    )


def resolve(location: Location) -> Location:
    """A folder with symlinks and ``..`` resolved (what it really is on disk); an S3 location as is."""
    return location.resolve() if isinstance(location, Path) else location


def allowed_roots(default: str, extra: Sequence[str]) -> list[Location]:
    """The operator's allowed state locations, resolved: the default location first.

    Raises:
        ValidationFailed: VALIDATION_001 for a malformed entry (the server does not start with it).
    """
    return [resolve(parse_location(value)) for value in (default, *extra)]


class StateStoreRegistry:
    """The :class:`~infra_mcp.ports.StateStores` port: one store per state location, made on first use.

    Args:
        settings: Default and allowed locations, and the AWS region/profile/endpoint for S3 locations.

    Raises:
        ValidationFailed: VALIDATION_001 if an allowed location is malformed.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._allowed = allowed_roots(settings.default_state_location, settings.allowed_state_locations)
        self._stores: dict[Location, StateStore] = {}
        self._guard = threading.Lock()

    def for_project(self, project: Project) -> IncarnationScope:
        """The store of ``project`` (its own ``state_location``, else the default), scoped to its incarnation.

        The location is checked against the allowed roots every time, not only when it was set:
        the database may have been edited, or the operator may have narrowed the list since.

        Raises:
            ValidationFailed: VALIDATION_001 if the location is malformed or not allowed.
            StateUnavailable: STATE_004 if an S3 location's AWS profile does not exist.
        """
        location = project.settings.state_location or self._settings.default_state_location
        return IncarnationScope(self.for_location(location), project.state_owner)

    def for_location(self, location: str) -> StateStore:
        """The (cached) store for an allowed location string.

        Raises:
            ValidationFailed: VALIDATION_001 if the location is malformed or not allowed.
        """
        resolved = resolve(parse_location(location))
        require_allowed(resolved, self._allowed, shown=location)
        with self._guard:
            store = self._stores.get(resolved)
            if store is None:
                store = self._stores[resolved] = self._make(resolved)
            return store

    def _make(self, location: Location) -> StateStore:
        if isinstance(location, S3Location):
            # Imported here: botocore takes ~0.2 s to import, which a server on local state never needs
            # (and every host start pays before the handshake).
            from infra_mcp.stores.state_s3 import S3StateStore

            return S3StateStore(
                location.bucket,
                location.prefix,
                region=self._settings.aws_region,
                profile=self._settings.aws_profile,
                endpoint_url=self._settings.s3_endpoint_url,
                max_attempts=self._settings.s3_max_attempts,
                connect_timeout=self._settings.s3_connect_timeout_seconds,
                read_timeout=self._settings.s3_read_timeout_seconds,
            )
        return LocalStateStore(location)

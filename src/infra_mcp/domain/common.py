"""Small shared helpers of the domain: ids, time, canonical JSON."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any

from infra_mcp.errors import ValidationFailed

PROJECT_ID_MAX = 63
_PROJECT_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def validate_project_id(value: object) -> str:
    """Return ``value`` if it is a safe project id, else raise ``VALIDATION_001``.

    Project ids become S3 key prefixes and folder names, so they are restricted to
    lower-case letters, digits and inner hyphens (like a DNS label): nothing can
    climb out of the project's prefix (``/``, ``..``), hide (control characters) or
    collide by case.

    Raises:
        ValidationFailed: with the rule the id broke.
    """
    if not isinstance(value, str) or not value:
        raise ValidationFailed(
            "Project id is empty. Use 1-63 characters: lower-case letters, digits and hyphens, e.g. 'web-app'.",
            details={"field": "project_id"},
        )
    if len(value) > PROJECT_ID_MAX:
        raise ValidationFailed(
            f"Project id is {len(value)} characters long; the limit is {PROJECT_ID_MAX}. Use a shorter id, e.g. 'web-app'.",
            details={"field": "project_id", "length": len(value)},
        )
    if not _PROJECT_ID.fullmatch(value):
        raise ValidationFailed(
            "Project id may contain only lower-case letters, digits and hyphens, and must start and end "
            "with a letter or digit (no '/', '..', spaces, upper case or control characters). Use an id "
            "like 'web-app'.",
            details={"field": "project_id", "value": value.encode("unicode_escape").decode()[:80]},
        )
    return value


def utcnow() -> datetime:
    return datetime.now(UTC)


def isoformat(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the form every checksum is taken over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def sha256_of(value: Any) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(value).encode()).hexdigest()

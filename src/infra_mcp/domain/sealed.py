"""Sealed secrets as the domain sees them: pure helpers, no key, no I/O.

A write-only value (a password) travels in plans as a *sealed marker* made by
``services.secrets.SecretSealer``::

    {"__sealed__": "<base64 of nonce + AES-GCM ciphertext>", "sha256": "<hex of the canonical value>"}

and is recorded in state's ``declared`` as ``{"__secret_sha256__": hex}`` (:func:`digest_markers`):
enough for the planner to notice that a secret changed, nothing to recover it. These helpers live in
the domain so the planner can use them without reaching into services.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

SEALED_KEY = "__sealed__"
DIGEST_KEY = "__secret_sha256__"


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def secret_digest(value: Any) -> str:
    """Hex SHA-256 of a value's canonical JSON: equal secrets give equal digests, whatever their form."""
    return hashlib.sha256(_canonical(value)).hexdigest()


def is_sealed(obj: Any) -> bool:
    """True if ``obj`` is a sealed marker made by :meth:`SecretSealer.seal`."""
    return isinstance(obj, dict) and isinstance(obj.get(SEALED_KEY), str) and isinstance(obj.get("sha256"), str)


def is_secret_digest(obj: Any) -> bool:
    """True if ``obj`` is the digest form kept in state's ``declared`` (``{"__secret_sha256__": hex}``)."""
    return isinstance(obj, dict) and len(obj) == 1 and isinstance(obj.get(DIGEST_KEY), str)


def digest_of(obj: Any) -> str | None:
    """The secret digest carried by a sealed marker or a digest form, else None."""
    if is_sealed(obj):
        return str(obj["sha256"])
    if is_secret_digest(obj):
        return str(obj[DIGEST_KEY])
    return None


def digest_markers(obj: Any) -> Any:
    """Return ``obj`` with every sealed marker replaced by ``{"__secret_sha256__": hex}``.

    The result is what state records as ``declared``: enough to detect that a secret changed,
    nothing to recover it. Containers without markers are returned as they are (not copied).
    """
    if isinstance(obj, dict):
        if is_sealed(obj):
            return {DIGEST_KEY: obj["sha256"]}
        replaced = {k: digest_markers(v) for k, v in obj.items()}
        return obj if all(replaced[k] is obj[k] for k in obj) else replaced
    if isinstance(obj, list):
        items = [digest_markers(v) for v in obj]
        return obj if all(a is b for a, b in zip(items, obj, strict=True)) else items
    return obj

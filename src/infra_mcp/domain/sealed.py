"""Sealed secrets as the domain sees them: pure helpers, no key, no I/O.

A write-only value (a password) travels in plans as a *sealed marker* made by
``services.secrets.SecretSealer``::

    {"__sealed__": "<base64 of nonce + AES-GCM ciphertext>", "sha256": "<hex of the canonical value>"}

and is recorded in state's ``declared`` as ``{"__secret_sha256__": digest}`` (:func:`digest_markers`):
enough for the planner to notice that a secret changed, nothing to recover it. These helpers live in
the domain so the planner can use them without reaching into services.

Digests are **keyed**: ``hmac-sha256:<hex>`` under a sub-key of the server key, so a weak password
cannot be recovered offline from a copy of ``state.json``, its history or the database. The key is
set once at start-up by the wiring (:func:`use_digest_key`); this is the one piece of process-wide
configuration in the domain, because every digest in a process must be made with the same key.
Digests written before keying (bare hex SHA-256) are still recognised: a clear value is compared
with them in their own form (:func:`digest_matches`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

SEALED_KEY = "__sealed__"
DIGEST_KEY = "__secret_sha256__"
KEYED_PREFIX = "hmac-sha256:"

_digest_key: list[bytes | None] = [None]


def use_digest_key(key: bytes | None) -> None:
    """Make every digest of this process keyed with ``key`` (a sub-key derived for digests)."""
    _digest_key[0] = key


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def secret_digest(value: Any) -> str:
    """Digest of a value's canonical JSON: equal secrets give equal digests, whatever their form.

    Keyed (``hmac-sha256:<hex>``) once :func:`use_digest_key` was called; a plain hex SHA-256
    before (tests of the pure domain, and digests written by older versions).
    """
    key = _digest_key[0]
    if key is None:
        return hashlib.sha256(_canonical(value)).hexdigest()
    return KEYED_PREFIX + hmac.new(key, _canonical(value), hashlib.sha256).hexdigest()


def digest_matches(value: Any, digest: str) -> bool:
    """True if clear ``value`` has ``digest``, in whichever form (keyed, or legacy plain) it was made."""
    if digest.startswith(KEYED_PREFIX):
        key = _digest_key[0]
        if key is None:
            return False
        mine = KEYED_PREFIX + hmac.new(key, _canonical(value), hashlib.sha256).hexdigest()
    else:
        mine = hashlib.sha256(_canonical(value)).hexdigest()
    return hmac.compare_digest(mine, digest)


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

"""Sealing write-only values (passwords, keys) so plans never hold them in clear text.

A desired state may carry secrets in write-only properties (``MasterUserPassword``). The plan must
keep them until execution, but it is stored in SQLite and shown to agents, so each secret is
replaced by a *sealed marker*::

    {"__sealed__": "<base64 of nonce + AES-GCM ciphertext>", "sha256": "<hex of the canonical value>"}

The key is a per-installation 256-bit file created with mode 0600 on first use. The ``sha256`` lets
the planner notice a changed secret without unsealing it, and is what state's ``declared`` keeps
(as ``{"__secret_sha256__": hex}``, see :func:`digest_markers`), so state never holds the secret
either. The executor calls :meth:`SecretSealer.unseal_tree` right before sending a desired state to
AWS.

The pure helpers (:func:`is_sealed`, :func:`digest_markers`, ...) live in ``domain/sealed`` so the
domain can use them without importing a service; they are re-exported here.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import threading
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from infra_mcp.domain.sealed import (
    DIGEST_KEY,
    SEALED_KEY,
    digest_markers,
    digest_of,
    is_sealed,
    is_secret_digest,
    secret_digest,
)
from infra_mcp.errors import ValidationFailed
from infra_mcp.services.keys import load_or_create_key

__all__ = [
    "DIGEST_KEY",
    "SEALED_KEY",
    "SecretSealer",
    "digest_markers",
    "digest_of",
    "is_sealed",
    "is_secret_digest",
    "secret_digest",
]

_NONCE_BYTES = 12
# Bound to every token so a ciphertext cannot be replayed into another purpose or format version.
_AAD = b"infra-mcp sealed value v1"


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class SecretSealer:
    """Seals and unseals secret values with a per-installation AES-256-GCM key.

    Args:
        key_path: Where the key file lives; created (0600, parent 0700) on first use.
    """

    def __init__(self, key_path: Path) -> None:
        self._key_path = Path(key_path)
        self._aead: AESGCM | None = None
        self._lock = threading.Lock()

    def _cipher(self) -> AESGCM:
        if self._aead is None:
            with self._lock:
                if self._aead is None:
                    self._aead = AESGCM(self._load_or_create_key())
        return self._aead

    def _load_or_create_key(self) -> bytes:
        return load_or_create_key(self._key_path)

    def seal(self, value: Any) -> dict[str, str]:
        """Encrypt a JSON value into a sealed marker carrying its digest."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        ciphertext = self._cipher().encrypt(nonce, _canonical(value), _AAD)
        return {SEALED_KEY: base64.b64encode(nonce + ciphertext).decode("ascii"), "sha256": secret_digest(value)}

    def unseal(self, marker: dict[str, Any]) -> Any:
        """Decrypt a sealed marker back to its value.

        Raises:
            ValidationFailed: the marker is malformed or was sealed with another key (or altered).
        """
        if not is_sealed(marker):
            raise ValidationFailed(
                "Not a sealed value. Make a new plan with the secret value.", details={"reason": "not_sealed"}
            )
        try:
            raw = base64.b64decode(marker[SEALED_KEY], validate=True)
            plain = self._cipher().decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _AAD)
        except (binascii.Error, InvalidTag, ValueError):
            # Never echo the token: it is harmless, but the habit of echoing secret-adjacent data is not.
            raise ValidationFailed(
                "A sealed secret cannot be opened: it was sealed by another installation's key or altered. "
                "Make a new plan with the secret value.",
                details={"reason": "unseal_failed"},
            ) from None
        return json.loads(plain)

    def unseal_tree(self, obj: Any) -> Any:
        """Return ``obj`` with every sealed marker, at any depth, replaced by its clear value."""
        if isinstance(obj, dict):
            if is_sealed(obj):
                return self.unseal(obj)
            return {k: self.unseal_tree(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self.unseal_tree(v) for v in obj]
        return obj

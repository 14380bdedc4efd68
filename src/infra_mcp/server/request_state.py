"""The MCP ``requestState`` key, shared by every replica that shares the server key.

On protocol 2026-07-28 a tool that asks the person something (``approve_plan``'s elicitation)
answers "input required" with a sealed ``requestState``; the client sends the call again with the
answer and that state, as a new HTTP request that a load balancer may route to another replica. The
SDK's default seals under a key made up by each process, so another replica (or this one after a
restart) could not open it. infra-mcp seals under a sub-key of the server key, which every replica of
a deployment already shares: any of them continues the exchange.
"""

from __future__ import annotations

import threading
from pathlib import Path

from mcp.server.request_state import AESGCMRequestStateCodec, RequestStateSecurity

from infra_mcp.domain.integrity import derive
from infra_mcp.services.keys import ServerKey


class ServerKeyCodec:
    """AES-256-GCM under ``derive(server key, "request-state")``; the key file is read at first use
    (building the server does not create it, as opening the app would)."""

    def __init__(self, key_path: Path) -> None:
        self._key = ServerKey(key_path)
        self._codec: AESGCMRequestStateCodec | None = None
        self._lock = threading.Lock()

    def _ready(self) -> AESGCMRequestStateCodec:
        with self._lock:
            if self._codec is None:
                self._codec = AESGCMRequestStateCodec([derive(self._key.get(), "request-state")])
            return self._codec

    def seal(self, payload: bytes) -> str:
        return self._ready().seal(payload)

    def unseal(self, token: str) -> bytes:
        return self._ready().unseal(token)


def shared_request_state(key_path: Path) -> RequestStateSecurity:
    """The SDK's request-state policy (expiry, request and principal binding) under the shared key."""
    return RequestStateSecurity(codec=ServerKeyCodec(key_path))

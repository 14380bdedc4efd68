"""A tiny identity provider on 127.0.0.1 for the auth tests: discovery, JWKS and RFC 7662 introspection.

Tokens are minted here with local keys (RSA and EC); nothing leaves the machine. The JWKS can be
rotated, and every request is counted, so tests can see when the server read the keys again.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

INTROSPECTION_CLIENT = ("infra-mcp", "introspection-secret")


class LocalIdP:
    """Keys, minted tokens, and the documents an issuer publishes."""

    def __init__(self) -> None:
        self.issuer = ""
        self.keys: dict[str, Any] = {}  # kid -> private key, all published
        self.algorithms: dict[str, str] = {}
        self.opaque: dict[str, dict[str, Any]] = {}  # opaque token -> introspection answer
        self.requests: list[str] = []
        self.jwks_down = False  # answer 503 for the JWKS, as an IdP in trouble would
        self.add_key("key-1")

    def add_key(self, kid: str, *, algorithm: str = "RS256") -> None:
        if algorithm.startswith("ES"):
            self.keys[kid] = ec.generate_private_key(ec.SECP256R1())
        else:
            self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.algorithms[kid] = algorithm

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, private in self.keys.items():
            if self.algorithms[kid].startswith("ES"):
                jwk = json.loads(ECAlgorithm.to_jwk(private.public_key()))
            else:
                jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": self.algorithms[kid]})
        return {"keys": keys}

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{self.issuer}/protocol/openid-connect/certs",
            "introspection_endpoint": f"{self.issuer}/protocol/openid-connect/token/introspect",
            "authorization_endpoint": f"{self.issuer}/protocol/openid-connect/auth",
            "token_endpoint": f"{self.issuer}/protocol/openid-connect/token",
        }

    def claims(self, user: str, audience: str, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": f"id-{user}",
            "preferred_username": user,
            "aud": audience,
            "azp": "agent-host",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "scope": "openid infra",
            "jti": uuid.uuid4().hex,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def mint(
        self,
        user: str,
        audience: str,
        *,
        kid: str = "key-1",
        key: Any = None,
        headers: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> str:
        """A signed JWT for ``user`` (claims overridable; a claim given as None is left out)."""
        private = key if key is not None else self.keys[kid]
        algorithm = self.algorithms.get(kid, "RS256")
        return jwt.encode(
            self.claims(user, audience, **overrides),
            private,
            algorithm=algorithm,
            headers={"kid": kid, **(headers or {})},
        )

    def opaque_token(self, user: str, audience: str, *, active: bool = True, **overrides: Any) -> str:
        token = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        self.opaque[token] = (
            {"active": active, **self.claims(user, audience, **overrides)} if active else {"active": False}
        )
        return token


def _handler(idp: LocalIdP) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:  # quiet
            return

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            idp.requests.append(self.path)
            if self.path == "/.well-known/openid-configuration":
                self._answer(200, idp.discovery())
            elif self.path == "/protocol/openid-connect/certs":
                if idp.jwks_down:
                    self._answer(503, {"error": "unavailable"})
                else:
                    self._answer(200, idp.jwks())
            else:
                self._answer(404, {"error": "not_found"})

        def do_POST(self) -> None:
            idp.requests.append(self.path)
            length = int(self.headers.get("Content-Length", "0"))
            form = parse_qs(self.rfile.read(length).decode())
            expected = "Basic " + base64.b64encode(":".join(INTROSPECTION_CLIENT).encode()).decode()
            if self.path != "/protocol/openid-connect/token/introspect":
                self._answer(404, {"error": "not_found"})
            elif self.headers.get("Authorization") != expected:
                self._answer(401, {"error": "invalid_client"})
            else:
                token = form.get("token", [""])[0]
                self._answer(200, idp.opaque.get(token, {"active": False}))

    return Handler


@contextlib.contextmanager
def local_idp() -> Iterator[LocalIdP]:
    """Serve a :class:`LocalIdP` on 127.0.0.1 (a free port) in a thread, for the duration."""
    idp = LocalIdP()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(idp))
    idp.issuer = f"http://127.0.0.1:{server.server_address[1]}/realms/infra"
    # Keycloak's layout: the issuer has a path, and its documents live under it.
    server.RequestHandlerClass = _prefixed(_handler(idp), "/realms/infra")
    thread = threading.Thread(target=server.serve_forever, name="local-idp", daemon=True)
    thread.start()
    try:
        yield idp
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _prefixed(handler: type[BaseHTTPRequestHandler], prefix: str) -> type[BaseHTTPRequestHandler]:
    class Prefixed(handler):  # type: ignore[misc, valid-type]
        def parse_request(self) -> bool:
            ok = super().parse_request()
            if ok and self.path.startswith(prefix):
                self.path = self.path[len(prefix) :]
            elif ok:
                self.path = "/unknown" + self.path
            return bool(ok)

    return Prefixed

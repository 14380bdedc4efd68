"""The OAuth 2.1 resource server of ``serve --http`` (the MCP authorization specification).

- Protected-resource metadata (RFC 9728) at ``/.well-known/oauth-protected-resource`` and at the
  path-suffixed form ``/.well-known/oauth-protected-resource/mcp`` the SDK registers.
- A request to ``/mcp`` without a valid bearer token gets 401 with
  ``WWW-Authenticate: Bearer resource_metadata="…"`` and the RFC 6750 error (``invalid_token``;
  ``insufficient_scope`` with 403 when a required scope is missing).
- JWTs are verified against the issuer's JWKS (signature, ``iss``, ``aud`` equal to this
  server's resource URI, ``exp``/``nbf``/``iat`` with a small leeway). The JWKS is cached and read
  again when a token names a key id it does not hold (at most every few seconds).
- Opaque tokens are checked by RFC 7662 introspection when an endpoint is configured.
- The acting user is the verified token's ``INFRA_MCP_AUTH_USER_CLAIM``: the tools read it from the
  request's verified token (:func:`verified_user`), never from a header or an argument.

Refusals are logged with the reason and the token's unverified issuer and key id, never the token.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2
import jwt
import structlog
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.routes import build_resource_metadata_url
from mcp.server.auth.settings import AuthSettings
from pydantic import AnyHttpUrl
from starlette.authentication import AuthCredentials, AuthenticationBackend, AuthenticationError
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from infra_mcp.domain.project import RESERVED_USER_PREFIXES
from infra_mcp.errors import ValidationFailed
from infra_mcp.settings import Settings

log = structlog.get_logger("infra_mcp.auth")

# Asymmetric algorithms only: a shared-secret (HS*) or "none" token could be forged by anyone who
# knows, or guesses, the secret; the issuer's JWKS publishes public keys.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
# A token naming an unknown key id makes us read the JWKS again, but not more often than this: a
# stream of tokens with made-up key ids must not turn into a stream of requests to the IdP.
JWKS_REFRESH_MIN_SECONDS = 10.0
HTTP_TIMEOUT_SECONDS = 5.0
USER_CLAIM_MAX = 200


class TokenRefused(AuthenticationError):
    """A bearer token that is not accepted: the RFC 6750 error, its status and a reason to log and show."""

    def __init__(self, reason: str, *, error: str = "invalid_token", status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error
        self.status = status


@dataclass(frozen=True)
class AuthConfig:
    """The resource server's settings, resolved: issuer, this resource's URI, the audience, endpoints.

    ``resource`` is this server's MCP endpoint URI (in the metadata); ``audience`` the ``aud`` tokens
    must carry: the resource URI unless ``INFRA_MCP_AUTH_AUDIENCE`` names another (an IdP that puts
    a client id in ``aud``).
    """

    issuer: str
    resource: str
    audience: str
    jwks_url: str | None
    user_claim: str
    required_scopes: tuple[str, ...]
    leeway: int
    introspection_url: str | None
    introspection_client_id: str | None
    introspection_client_secret: str | None

    @property
    def metadata_url(self) -> str:
        return str(build_resource_metadata_url(AnyHttpUrl(self.resource)))


def auth_config(settings: Settings, *, default_public_url: str) -> AuthConfig:
    """Resolve the auth settings, or refuse incomplete ones.

    Raises:
        ValidationFailed: VALIDATION_001 when the issuer or the public URL is not an http(s) URL.
    """
    issuer = (settings.auth_issuer or "").strip()
    public = (settings.public_url or default_public_url).rstrip("/")
    for name, value in (("INFRA_MCP_AUTH_ISSUER", issuer), ("INFRA_MCP_PUBLIC_URL", public)):
        if not value.startswith(("https://", "http://")):
            raise ValidationFailed(
                f"{name} must be an http(s) URL, got {value[:100]!r}. Set it to your identity provider's issuer "
                "URL (INFRA_MCP_AUTH_ISSUER) and the address clients reach this server at (INFRA_MCP_PUBLIC_URL).",
                details={"setting": name},
            )
    if settings.auth_introspection_url and not settings.auth_introspection_client_id:
        raise ValidationFailed(
            "INFRA_MCP_AUTH_INTROSPECTION_URL is set without INFRA_MCP_AUTH_INTROSPECTION_CLIENT_ID: introspection "
            "needs this server's client credentials. Set the client id and secret, or unset the URL.",
            details={"setting": "INFRA_MCP_AUTH_INTROSPECTION_CLIENT_ID"},
        )
    secret = settings.auth_introspection_client_secret
    return AuthConfig(
        issuer=issuer,
        resource=f"{public}/mcp",
        audience=settings.auth_audience or f"{public}/mcp",
        jwks_url=settings.auth_jwks_url,
        user_claim=settings.auth_user_claim,
        required_scopes=tuple(settings.auth_required_scopes),
        leeway=settings.auth_leeway_seconds,
        introspection_url=settings.auth_introspection_url,
        introspection_client_id=settings.auth_introspection_client_id,
        introspection_client_secret=secret.get_secret_value() if secret else None,
    )


def discovery_urls(issuer: str) -> list[str]:
    """Where an issuer's metadata may be, in order: OpenID Connect Discovery (appended to the issuer, as
    Keycloak, Cognito and Entra ID publish it), then RFC 8414 (inserted before the issuer's path)."""
    parts = urlsplit(issuer)
    base = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    urls = [f"{issuer}/.well-known/openid-configuration", f"{base}/.well-known/oauth-authorization-server{path}"]
    if path:
        urls.append(f"{base}/.well-known/openid-configuration{path}")
    return urls


def _unverified_part(token: str, index: int) -> dict[str, Any]:
    """A JWT's header (0) or payload (1), NOT verified: only to route and to log, never to trust."""
    try:
        part = token.split(".")[index]
        decoded = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (ValueError, IndexError):
        return {}
    return decoded if isinstance(decoded, dict) else {}


def _looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and bool(_unverified_part(token, 0))


def _scopes_of(claims: dict[str, Any]) -> list[str]:
    """``scope`` (RFC 8693/9068, space-separated) or ``scp`` (a list, as Entra ID and Okta write it)."""
    scope = claims.get("scope")
    if isinstance(scope, str):
        return scope.split()
    scp = claims.get("scp")
    if isinstance(scp, list):
        return [s for s in scp if isinstance(s, str)]
    if isinstance(scp, str):
        return scp.split()
    return []


class JwksCache:
    """The issuer's signing keys by key id, read once and again when an unknown key id appears."""

    def __init__(self, config: AuthConfig, fetch: Callable[[str], Awaitable[dict[str, Any]]]) -> None:
        self.config = config
        self.fetch = fetch
        self._keys: dict[str, jwt.PyJWK] = {}
        self._unnamed: list[jwt.PyJWK] = []
        self._read_at: float | None = None
        self._failed_at: float | None = None
        self._jwks_url = config.jwks_url
        self._lock = anyio.Lock()

    async def _url(self) -> str:
        if self._jwks_url is None:
            discovery = await self._discover()
            url = discovery.get("jwks_uri")
            if not isinstance(url, str) or not url.startswith(("https://", "http://")):
                raise TokenRefused("the issuer's discovery document has no jwks_uri")
            self._jwks_url = url
        return self._jwks_url

    async def _discover(self) -> dict[str, Any]:
        issuer = self.config.issuer.rstrip("/")
        last: Exception | None = None
        for url in discovery_urls(issuer):
            try:
                document = await self.fetch(url)
            except (httpx2.HTTPError, ValueError) as exc:
                last = exc
                continue
            if document.get("issuer") not in (None, self.config.issuer, issuer):
                raise TokenRefused("the issuer's discovery document names another issuer")
            return document
        log.error("auth_discovery_failed", issuer=issuer, error=str(last)[:200])
        raise TokenRefused("the issuer's discovery document cannot be read")

    async def _read(self) -> None:
        url = await self._url()
        try:
            document = await self.fetch(url)
        except (httpx2.HTTPError, ValueError) as exc:
            log.error("auth_jwks_unreadable", jwks_url=url, error=str(exc)[:200])
            raise TokenRefused("the issuer's signing keys cannot be read") from None
        keys: dict[str, jwt.PyJWK] = {}
        unnamed: list[jwt.PyJWK] = []
        for entry in document.get("keys", []) if isinstance(document.get("keys"), list) else []:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                continue
            try:
                key = jwt.PyJWK(entry)
            except (jwt.PyJWKError, jwt.InvalidKeyError):
                continue  # a key type or algorithm we do not use
            if isinstance(entry.get("kid"), str):
                keys[entry["kid"]] = key
            else:
                unnamed.append(key)
        self._keys, self._unnamed, self._read_at = keys, unnamed, time.monotonic()
        log.info("auth_jwks_read", jwks_url=url, keys=len(keys) + len(unnamed))

    async def key(self, kid: str | None) -> jwt.PyJWK:
        """The signing key ``kid`` names (or the only key, for a token without a key id).

        Raises:
            TokenRefused: no such key, even after reading the JWKS again.
        """
        async with self._lock:
            if self._read_at is None:
                if self._failed_at is not None and time.monotonic() - self._failed_at < JWKS_REFRESH_MIN_SECONDS:
                    # The issuer did not answer a moment ago: refuse at once instead of queueing every request
                    # behind another wait for it.
                    raise TokenRefused("the issuer's signing keys cannot be read")
                try:
                    await self._read()
                except TokenRefused:
                    self._failed_at = time.monotonic()
                    raise
            found = self._find(kid)
            if found is None and time.monotonic() - (self._read_at or 0.0) >= JWKS_REFRESH_MIN_SECONDS:
                try:
                    await self._read()  # a rotated key: the issuer published it after our last read
                except TokenRefused:
                    self._read_at = time.monotonic()  # keep the keys we have; ask again after the interval
                    raise
                found = self._find(kid)
        if found is None:
            raise TokenRefused("the token's signing key is not one of the issuer's keys")
        return found

    def _find(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is not None:
            return self._keys.get(kid)
        every = [*self._keys.values(), *self._unnamed]
        return every[0] if len(every) == 1 else None


class InfraTokenVerifier:
    """The SDK's ``TokenVerifier``: JWTs against the JWKS, opaque tokens by introspection."""

    def __init__(self, config: AuthConfig, client: httpx2.AsyncClient | None = None) -> None:
        self.config = config
        self._client = client
        self.jwks = JwksCache(config, self._get_json)

    def _http(self) -> httpx2.AsyncClient:
        if self._client is None:
            self._client = httpx2.AsyncClient(timeout=HTTP_TIMEOUT_SECONDS, follow_redirects=False)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def _get_json(self, url: str) -> dict[str, Any]:
        response = await self._http().get(url, headers={"Accept": "application/json"})
        response.raise_for_status()
        document = response.json()
        if not isinstance(document, dict):
            raise ValueError(f"{url} did not answer a JSON object")
        return document

    async def verify_token(self, token: str) -> AccessToken | None:
        """The SDK's protocol: the access token, or None when refused (the reason is logged)."""
        try:
            return await self.check(token)
        except TokenRefused:
            return None

    async def check(self, token: str) -> AccessToken:
        """Verify ``token`` and return what it grants.

        Raises:
            TokenRefused: with the RFC 6750 error and the reason (logged here, without the token).
        """
        try:
            if _looks_like_jwt(token):
                claims = await self._verify_jwt(token)
            elif self.config.introspection_url:
                claims = await self._introspect(token)
            else:
                raise TokenRefused("the token is not a JWT and no introspection endpoint is configured")
            return self._access(token, claims)
        except TokenRefused as refused:
            header, payload = _unverified_part(token, 0), _unverified_part(token, 1)
            log.warning(
                "token_refused",
                reason=refused.reason,
                error=refused.error,
                unverified_iss=str(payload.get("iss", ""))[:200],
                unverified_kid=str(header.get("kid", ""))[:100],
                unverified_alg=str(header.get("alg", ""))[:20],
            )
            raise

    async def _verify_jwt(self, token: str) -> dict[str, Any]:
        header = _unverified_part(token, 0)
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise TokenRefused(f"the token's algorithm {str(alg)[:20]!r} is not accepted (asymmetric keys only)")
        if _unverified_part(token, 1).get("iss") != self.config.issuer:
            raise TokenRefused("the token was issued by another issuer")
        kid = header.get("kid")
        key = await self.jwks.key(kid if isinstance(kid, str) else None)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway,
                options={"require": ["exp", "iss", "aud"], "verify_signature": True},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRefused("the token expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenRefused("the token is not valid yet (nbf or iat in the future)") from None
        except jwt.InvalidAudienceError:
            raise TokenRefused(f"the token was issued for another audience, not {self.config.audience}") from None
        except jwt.InvalidIssuerError:
            raise TokenRefused("the token was issued by another issuer") from None
        except jwt.InvalidSignatureError:
            raise TokenRefused("the token's signature does not verify") from None
        except jwt.exceptions.InvalidSubjectError:
            raise TokenRefused("the token's 'sub' claim is not a string") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenRefused(f"the token lacks the {exc.claim!r} claim") from None
        except jwt.InvalidTokenError as exc:
            raise TokenRefused(f"the token is malformed ({type(exc).__name__})") from None
        return claims

    async def _introspect(self, token: str) -> dict[str, Any]:
        config = self.config
        assert config.introspection_url is not None
        try:
            response = await self._http().post(
                config.introspection_url,
                data={"token": token, "token_type_hint": "access_token"},
                auth=(config.introspection_client_id or "", config.introspection_client_secret or ""),
                headers={"Accept": "application/json"},
            )
            response.raise_for_status()
            claims = response.json()
        except (httpx2.HTTPError, ValueError) as exc:
            log.error("auth_introspection_failed", endpoint=config.introspection_url, error=str(exc)[:200])
            raise TokenRefused("the token cannot be checked: the introspection endpoint did not answer") from None
        if not isinstance(claims, dict) or claims.get("active") is not True:
            raise TokenRefused("the token is not active (introspection)")
        if claims.get("iss", config.issuer) != config.issuer:
            raise TokenRefused("the token was issued by another issuer")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if config.audience not in audiences:
            raise TokenRefused(f"the token was issued for another audience, not {config.audience}")
        now = time.time()
        exp = claims.get("exp")
        if isinstance(exp, int | float) and exp + config.leeway < now:
            raise TokenRefused("the token expired")
        nbf = claims.get("nbf")
        if isinstance(nbf, int | float) and nbf - config.leeway > now:
            raise TokenRefused("the token is not valid yet (nbf or iat in the future)")
        return claims

    def _access(self, token: str, claims: dict[str, Any]) -> AccessToken:
        user = claims.get(self.config.user_claim)
        if not isinstance(user, str) or not user.strip() or len(user) > USER_CLAIM_MAX:
            raise TokenRefused(f"the token has no usable {self.config.user_claim!r} claim naming the user")
        if user.strip().lower().startswith(RESERVED_USER_PREFIXES):
            raise TokenRefused(
                f"the token's user name starts with a reserved prefix ({', '.join(RESERVED_USER_PREFIXES)})"
            )
        exp = claims.get("exp")
        client = claims.get("azp") or claims.get("client_id") or "unknown-client"
        return AccessToken(
            token=token,
            client_id=str(client)[:200],
            scopes=_scopes_of(claims),
            expires_at=int(exp) if isinstance(exp, int | float) else None,
            resource=self.config.resource,
            subject=str(claims.get("sub", user))[:200],
            claims={"iss": self.config.issuer, "infra_mcp_user": user},
        )


class _VerifyingBackend(AuthenticationBackend):
    """Starlette authentication: a bearer token is verified or refused with its RFC 6750 error.

    The SDK's backend turns every refusal into "no user", so the 401 could not say why. This one
    raises, and :func:`_refusal_response` answers with the reason (never the token).
    """

    def __init__(self, verifier: InfraTokenVerifier) -> None:
        self.verifier = verifier

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, AuthenticatedUser] | None:
        header = conn.headers.get("authorization")
        if not header:
            return None  # RequireAuthMiddleware answers 401 with the metadata URL
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise TokenRefused("the Authorization header is not 'Bearer <token>'", error="invalid_request", status=400)
        access = await self.verifier.check(token.strip())
        return AuthCredentials(access.scopes), AuthenticatedUser(access)


def _refusal_response(metadata_url: str) -> Callable[[HTTPConnection, AuthenticationError], Response]:
    def respond(_: HTTPConnection, exc: AuthenticationError) -> Response:
        refused = exc if isinstance(exc, TokenRefused) else TokenRefused(str(exc))
        # A header value: printable ASCII only, no quote or backslash (the reason may quote a token's alg).
        description = "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in refused.reason)
        challenge = (
            f'Bearer error="{refused.error}", error_description="{description}", resource_metadata="{metadata_url}"'
        )
        return JSONResponse(
            {"error": refused.error, "error_description": refused.reason},
            status_code=refused.status,
            headers={"WWW-Authenticate": challenge},
        )

    return respond


def auth_for(settings: Settings, *, default_public_url: str) -> tuple[AuthSettings, InfraTokenVerifier]:
    """The SDK's auth settings (resource server only) and our verifier.

    Raises:
        ValidationFailed: VALIDATION_001 for incomplete auth settings.
    """
    config = auth_config(settings, default_public_url=default_public_url)
    auth = AuthSettings(
        issuer_url=AnyHttpUrl(config.issuer),
        resource_server_url=AnyHttpUrl(config.resource),
        required_scopes=list(config.required_scopes) or None,
        # The verifier checks the audience itself and reports a token that passes as issued for this resource.
        validate_token_resource=True,
    )
    return auth, InfraTokenVerifier(config)


def install(app: Any, verifier: InfraTokenVerifier) -> None:
    """Put our verifying backend in place of the SDK's and add the root metadata route.

    The SDK's streamable-HTTP app already has the metadata route at the path-suffixed location
    (``/.well-known/oauth-protected-resource/mcp``) and ``RequireAuthMiddleware`` on ``/mcp``; clients
    that look at the root location (RFC 9728 without a path) find the same document there.
    """
    config = verifier.config
    replaced = False
    for index, middleware in enumerate(app.user_middleware):
        if middleware.cls is AuthenticationMiddleware:
            app.user_middleware[index] = Middleware(
                AuthenticationMiddleware,
                backend=_VerifyingBackend(verifier),
                on_error=_refusal_response(config.metadata_url),
            )
            replaced = True
    if not replaced:  # the SDK changed how it wires auth: refuse to run without our checks
        raise RuntimeError("the SDK's streamable-HTTP app has no AuthenticationMiddleware to replace")
    suffixed = next(
        (r for r in app.routes if isinstance(r, Route) and r.path.startswith("/.well-known/oauth-protected-resource")),
        None,
    )
    if suffixed is not None and suffixed.path != "/.well-known/oauth-protected-resource":
        app.router.routes.append(
            Route("/.well-known/oauth-protected-resource", endpoint=suffixed.endpoint, methods=["GET", "OPTIONS"])
        )


def verified_user() -> str | None:
    """The acting user of this request: the verified token's user claim (None without auth)."""
    token = get_access_token()
    if token is None or token.claims is None:
        return None
    user = token.claims.get("infra_mcp_user")
    return user if isinstance(user, str) else None

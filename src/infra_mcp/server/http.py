"""``infra-mcp serve --http HOST:PORT``: MCP over streamable HTTP at ``/mcp``, with the SDK's transport.

Two modes:

- **Loopback, no auth** (no ``INFRA_MCP_AUTH_ISSUER``): one person on their own machine, like stdio.
  Only loopback addresses may be bound, with the SDK's DNS-rebinding protection (Host and Origin
  must be loopback), and the acting user is ``INFRA_MCP_USER`` / the OS user. A non-loopback bind
  is refused: anyone on the network could act as that user.
- **Team server** (``INFRA_MCP_AUTH_ISSUER`` set): an OAuth 2.1 resource server. Every request to
  ``/mcp`` carries a bearer token of the team's identity provider, and the acting user of every call
  is the verified token's claim (see :mod:`infra_mcp.server.auth`).

Stopping (SIGTERM, Ctrl-C) is graceful: the listening socket closes, tool calls in flight finish
(executions write their final state), new calls get ``SERVER_001``, then the server exits. A
second Ctrl-C, or ``INFRA_MCP_HTTP_SHUTDOWN_GRACE_SECONDS`` passing, stops it at once: an
execution cut short leaves its journal, which the next start (or any replica) reconciles.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

import structlog
import uvicorn
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette

from infra_mcp.errors import InfraError, ValidationFailed
from infra_mcp.server.drain import Drain
from infra_mcp.settings import Settings

log = structlog.get_logger("infra_mcp.http")

MCP_PATH = "/mcp"
# Once the calls in flight are done, open GET streams (server-to-client notifications) are closed
# after this many seconds: they never end by themselves.
_STREAMS_GRACE_SECONDS = 2


@dataclass(frozen=True)
class Bind:
    """Where to listen: a host (IPv4, IPv6 or a name) and a port."""

    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


def parse_bind(value: str) -> Bind:
    """``HOST:PORT`` (``[::1]:8000`` for IPv6) as a :class:`Bind`.

    Raises:
        ValidationFailed: VALIDATION_001 when it is not HOST:PORT with a port from 0 to 65535.
    """
    text = value.strip()
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isascii() or not port.isdigit() or int(port) > 65535:
        raise ValidationFailed(
            f"--http takes HOST:PORT, e.g. 127.0.0.1:8000 or [::1]:8000, got {value[:100]!r}. Pass it in that form.",
            details={"bind": value[:100]},
        )
    return Bind(host=host, port=int(port))


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only: ``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def loopback_security(bind: Bind) -> TransportSecuritySettings:
    """The SDK's DNS-rebinding protection for a loopback bind: Host and Origin must be loopback.

    The SDK enables it by itself only for ``127.0.0.1``, ``localhost`` and ``::1``; any other
    loopback address (``127.0.0.2``) gets the same, plus its own name.
    """
    hosts = ["127.0.0.1", "localhost", "[::1]"]
    own = f"[{bind.host}]" if ":" in bind.host else bind.host
    if own not in hosts:
        hosts.append(own)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[f"{h}:*" for h in hosts],
        allowed_origins=[f"http://{h}:*" for h in hosts],
    )


def refuse_open_bind(bind: Bind, settings: Settings) -> None:
    """Refuse to serve without auth anywhere but loopback.

    Raises:
        ValidationFailed: VALIDATION_001 for a non-loopback bind without ``INFRA_MCP_AUTH_ISSUER``.
    """
    if settings.auth_enabled and not bind.loopback and not settings.public_url:
        raise ValidationFailed(
            f"Serving on {bind.host}:{bind.port} with authentication needs INFRA_MCP_PUBLIC_URL: tokens are checked "
            "against this server's public address (their audience), which the bind address does not tell. Set it to "
            "the address clients use, e.g. https://infra.example.com.",
            details={"bind": f"{bind.host}:{bind.port}", "reason": "public_url_required"},
        )
    if settings.auth_enabled or bind.loopback:
        return
    raise ValidationFailed(
        f"Refusing to serve on {bind.host}:{bind.port} without authentication: anyone who reaches that address "
        f"would act as {settings.user!r}. Bind a loopback address (127.0.0.1:{bind.port}), or set "
        "INFRA_MCP_AUTH_ISSUER (and INFRA_MCP_PUBLIC_URL) to require tokens of your identity provider.",
        details={"bind": f"{bind.host}:{bind.port}", "reason": "no_auth_on_open_bind"},
    )


def build_http_app(settings: Settings, bind: Bind) -> tuple[Starlette, Drain]:
    """The Starlette app serving MCP at ``/mcp`` (and the auth metadata when auth is on).

    Raises:
        ValidationFailed: VALIDATION_001 for a non-loopback bind without auth, or incomplete auth settings.
    """
    from infra_mcp.server.app import build_server

    refuse_open_bind(bind, settings)
    if settings.auth_enabled:
        from infra_mcp.server.auth import auth_for, install

        auth, verifier = auth_for(settings, default_public_url=bind.url)
        server = build_server(settings, auth=auth, token_verifier=verifier)
        # Tokens protect the endpoint. The Host a load balancer forwards is the public name, which the
        # loopback-only Host check would refuse.
        security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
        app = server.streamable_http_app(streamable_http_path=MCP_PATH, transport_security=security, host=bind.host)
        install(app, verifier)
    else:
        server = build_server(settings)
        app = server.streamable_http_app(
            streamable_http_path=MCP_PATH, transport_security=loopback_security(bind), host=bind.host
        )
    drain: Drain = server.drain  # type: ignore[attr-defined]
    return app, drain


class _DrainingServer(uvicorn.Server):
    """uvicorn, whose first stop signal drains the tool calls in flight before shutting down."""

    def __init__(self, config: uvicorn.Config, drain: Drain, grace_seconds: float) -> None:
        super().__init__(config)
        self.drain = drain
        self.grace_seconds = grace_seconds
        self._stop_asked = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._stop_asked:  # a second signal: stop now
            super().handle_exit(sig, frame)
            self.force_exit = True
            return
        self._captured_signals.append(sig)
        self._stop_asked = True

    async def on_tick(self, counter: int) -> bool:
        if self._stop_asked and not self.drain.stopping:
            self.drain.stop()
            for listening in self.servers:
                listening.close()  # no new connections; the load balancer moves on
            log.info("http_stopping", in_flight=self.drain.in_flight, grace_seconds=self.grace_seconds)
        if self.drain.stopping:
            if self.drain.idle:
                log.info("http_drained", waited_seconds=round(self.drain.waited(), 1))
                self.should_exit = True
            elif self.drain.waited() >= self.grace_seconds:
                log.warning("http_grace_exceeded", in_flight=self.drain.in_flight)
                self.should_exit = True
        return await super().on_tick(counter)


def serve_http(bind_text: str, settings: Settings | None = None) -> None:
    """Serve MCP over streamable HTTP until stopped.

    Raises:
        SystemExit: 2 for a bind refused or malformed, 1 when start-up fails with an InfraError.
    """
    from infra_mcp.logs import configure_logging

    settings = settings or Settings()
    configure_logging(settings.log_level)
    try:
        bind = parse_bind(bind_text)
        app, drain = build_http_app(settings, bind)
    except ValidationFailed as exc:
        sys.stderr.write(f"infra-mcp: cannot serve: {exc.code}: {exc.message}\n")
        raise SystemExit(2) from None
    if settings.auth_enabled:
        sys.stderr.write(
            f"infra-mcp: serving MCP at {bind.url}{MCP_PATH}; tokens of {settings.auth_issuer} are required, "
            "and each call acts as the token's user.\n"
        )
    else:
        sys.stderr.write(
            f"infra-mcp: serving MCP at {bind.url}{MCP_PATH} on loopback only, without authentication "
            f"(DNS-rebinding protection on); every call acts as {settings.user!r}. For a team, set "
            "INFRA_MCP_AUTH_ISSUER.\n"
        )
    config = uvicorn.Config(
        app,
        host=bind.host,
        port=bind.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=_STREAMS_GRACE_SECONDS,
        lifespan="on",
    )
    failures = _watch_start_up(app)
    try:
        _DrainingServer(config, drain, settings.http_shutdown_grace_seconds).run()
    except SystemExit:
        if not failures:
            raise
    if failures:
        # uvicorn logged the traceback; the person reading the log needs the code and the next step.
        sys.stderr.write(f"infra-mcp: cannot start: {failures[0].code}: {failures[0].message}\n")
        raise SystemExit(1)


def _watch_start_up(app: Starlette) -> list[InfraError]:
    """Record the InfraError (a damaged database, say) that makes the app's lifespan fail to start."""
    from infra_mcp.server.app import infra_error_in

    failures: list[InfraError] = []
    started = False
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(running: Any) -> AsyncIterator[Any]:
        nonlocal started
        try:
            async with inner(running) as state:
                started = True
                yield state
        except BaseException as exc:
            error = infra_error_in(exc)
            if error is not None and not started:
                failures.append(error)
            raise

    app.router.lifespan_context = lifespan
    return failures

"""The sandbox over Cloud Control's own wire protocol (AWS JSON 1.0), for boto3 and the AWS CLI.

``POST /`` with ``X-Amz-Target: CloudApiService.<Operation>`` and a JSON body; answers are JSON
(timestamps as epoch seconds, as the protocol wants) and errors are ``{"__type", "message"}`` with
AWS's HTTP status. Signatures are not checked (any credentials do) and the server only ever binds a
loopback address: it is a local test double, not a service.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import anyio.to_thread
import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from infra_mcp.sandbox.cloud import SandboxCloud
from infra_mcp.sandbox.errors import CloudControlError

_log = structlog.get_logger("infra_mcp.sandbox.http")
_TARGET_PREFIX = "CloudApiService."
_OPERATIONS = frozenset(
    {
        "CreateResource",
        "GetResource",
        "UpdateResource",
        "DeleteResource",
        "ListResources",
        "GetResourceRequestStatus",
    }
)
_CONTENT_TYPE = "application/x-amz-json-1.0"
# SigV4: "Credential=<key>/<date>/<region>/<service>/aws4_request"
_CREDENTIAL_REGION = re.compile(r"Credential=[^/]+/\d{8}/(?P<region>[a-z0-9-]+)/")


def ensure_loopback(host: str) -> None:
    """Refuse to serve anything but a loopback address.

    Raises:
        ValueError: ``host`` is not ``localhost`` or a loopback IP.
    """
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(f"the sandbox serves HTTP on loopback addresses only (127.0.0.1, ::1, localhost), not {host!r}")


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(f"cannot encode {type(value).__name__}")


def _answer(status: int, body: dict[str, Any]) -> Response:
    return Response(
        json.dumps(body, default=_encode, ensure_ascii=False),
        status_code=status,
        media_type=_CONTENT_TYPE,
        headers={"x-amzn-RequestId": str(uuid.uuid4()), "x-infra-mcp-sandbox": "true"},
    )


def _error(status: int, code: str, message: str) -> Response:
    return _answer(status, {"__type": code, "message": message})


def build_app(cloud: SandboxCloud) -> Starlette:
    """The ASGI application answering Cloud Control's AWS JSON 1.0 protocol from ``cloud``."""

    async def endpoint(request: Request) -> Response:
        target = request.headers.get("x-amz-target", "")
        operation = target.removeprefix(_TARGET_PREFIX)
        if not target.startswith(_TARGET_PREFIX) or operation not in _OPERATIONS:
            return _error(400, "UnknownOperationException", f"Unknown operation {target or '(no X-Amz-Target)'}.")
        try:
            params = json.loads(await request.body() or b"{}")
        except ValueError:
            return _error(400, "SerializationException", "The request body is not valid JSON.")
        if not isinstance(params, dict):
            return _error(400, "SerializationException", "The request body must be a JSON object.")
        match = _CREDENTIAL_REGION.search(request.headers.get("authorization", ""))
        region = match["region"] if match else None
        try:
            # The world file's lock may wait on another process: keep that off the event loop.
            answer = await anyio.to_thread.run_sync(lambda: cloud.call(operation, params, region=region))
        except CloudControlError as exc:
            _log.info("cloudcontrol_http", operation=operation, status=exc.status_code, error_code=exc.code)
            return _error(exc.status_code, exc.code, exc.message)
        except Exception:
            _log.exception("sandbox_internal_error", operation=operation)
            return _error(500, "InternalFailure", "The infra-mcp sandbox failed unexpectedly; see its log.")
        _log.info("cloudcontrol_http", operation=operation, status=200)
        return _answer(200, answer)

    return Starlette(routes=[Route("/", endpoint, methods=["POST"])])


def _server(cloud: SandboxCloud, host: str, port: int) -> uvicorn.Server:
    ensure_loopback(host)
    config = uvicorn.Config(
        build_app(cloud),
        host=host,
        port=port,
        # Our logging already goes to stderr; uvicorn's default config would send access logs to stdout.
        log_config=None,
        access_log=False,
        lifespan="off",
    )
    return uvicorn.Server(config)


def serve(cloud: SandboxCloud, host: str, port: int) -> None:
    """Serve until interrupted.

    Raises:
        ValueError: ``host`` is not a loopback address.
    """
    _server(cloud, host, port).run()


@contextlib.contextmanager
def running(cloud: SandboxCloud, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve in a background thread for the duration of the block; yields the endpoint URL.

    ``port=0`` picks a free port. For tests and benchmarks that want a boto3 client on the sandbox.
    """
    server = _server(cloud, host, port)
    thread = threading.Thread(target=server.run, name="infra-mcp-sandbox-http", daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the sandbox HTTP server failed to start; see its log")
            threading.Event().wait(0.01)
        bound = server.servers[0].sockets[0].getsockname()
        yield f"http://{host if ':' not in host else f'[{host}]'}:{bound[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)

"""The sandbox over AWS's own wire protocols, for boto3, the AWS CLI and the real AWS API MCP server.

Cloud Control (AWS JSON 1.0): ``POST /`` with ``X-Amz-Target: CloudApiService.<Operation>`` and a JSON
body; answers are JSON (timestamps as epoch seconds, as the protocol wants) and errors are
``{"__type", "message"}`` with AWS's HTTP status.

Beside it, the read calls agents make most (see :mod:`~infra_mcp.sandbox.wire`): STS
``GetCallerIdentity`` (query protocol), EC2 ``DescribeRegions``/``DescribeAvailabilityZones`` (ec2
protocol), both as ``POST /`` with a form body, and S3 ``ListBuckets`` (``GET /``, rest-xml). Point
a client at it with ``AWS_ENDPOINT_URL_<SERVICE>`` (or ``AWS_ENDPOINT_URL`` for all).

Signatures are not checked (any credentials do) and the server only ever binds a loopback address:
it is a local test double, not a service.
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
from urllib.parse import parse_qs

import anyio.to_thread
import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from infra_mcp.sandbox import wire
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
_XML = "text/xml"
# SigV4: "Credential=<key>/<date>/<region>/<service>/aws4_request"
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/(?P<region>[a-z0-9-]+)/(?P<service>[a-z0-9-]+)/")
_STS_ACTIONS = frozenset({"GetCallerIdentity"})
_EC2_ACTIONS = frozenset({"DescribeRegions", "DescribeAvailabilityZones"})


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


def _scope(request: Request) -> tuple[str | None, str | None]:
    """The (region, service) the request was signed for, if it was signed."""
    match = _CREDENTIAL_SCOPE.search(request.headers.get("authorization", ""))
    return (match["region"], match["service"]) if match else (None, None)


def _xml(status: int, body: str, rid: str) -> Response:
    return Response(
        body,
        status_code=status,
        media_type=_XML,
        headers={"x-amzn-RequestId": rid, "x-amz-request-id": rid, "x-infra-mcp-sandbox": "true"},
    )


def build_app(cloud: SandboxCloud) -> Starlette:
    """The ASGI application answering Cloud Control, STS, EC2 and S3 reads from ``cloud``."""

    async def run(operation: str, params: dict[str, Any], region: str | None) -> dict[str, Any]:
        # The world file's lock may wait on another process: keep that off the event loop.
        delay = cloud.config.read_delay_seconds(operation)
        if delay:
            await anyio.sleep(delay)
        return await anyio.to_thread.run_sync(lambda: cloud.call(operation, params, region=region))

    async def cloudcontrol(request: Request, target: str, region: str | None) -> Response:
        operation = target.removeprefix(_TARGET_PREFIX)
        if not target.startswith(_TARGET_PREFIX) or operation not in _OPERATIONS:
            return _error(400, "UnknownOperationException", f"Unknown operation {target}.")
        try:
            params = json.loads(await request.body() or b"{}")
        except ValueError:
            return _error(400, "SerializationException", "The request body is not valid JSON.")
        if not isinstance(params, dict):
            return _error(400, "SerializationException", "The request body must be a JSON object.")
        try:
            answer = await run(operation, params, region)
        except CloudControlError as exc:
            _log.info("cloudcontrol_http", operation=operation, status=exc.status_code, error_code=exc.code)
            return _error(exc.status_code, exc.code, exc.message)
        except Exception:
            _log.exception("sandbox_internal_error", operation=operation)
            return _error(500, "InternalFailure", "The infra-mcp sandbox failed unexpectedly; see its log.")
        _log.info("cloudcontrol_http", operation=operation, status=200)
        return _answer(200, answer)

    async def query(request: Request, region: str | None, service: str | None) -> Response:
        """STS (query protocol) or EC2 (ec2 protocol): a form body naming its ``Action``."""
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        action = (form.get("Action") or [""])[0]
        is_ec2 = service == "ec2" or (service is None and action in _EC2_ACTIONS)
        error, served = (wire.ec2_error, _EC2_ACTIONS) if is_ec2 else (wire.sts_error, _STS_ACTIONS)
        rid = wire.request_id()
        if action not in served:
            what = "EC2" if is_ec2 else "STS"
            message = f"The infra-mcp sandbox does not serve {what} action {action or '(none)'}."
            return _xml(400, error("InvalidAction", message, rid), rid)
        params: dict[str, Any] = {
            "RegionNames": wire.list_param(form, "RegionName"),
            "ZoneNames": wire.list_param(form, "ZoneName"),
        }
        try:
            answer = await run(action, params, region)
        except CloudControlError as exc:
            _log.info("query_http", action=action, status=exc.status_code, error_code=exc.code)
            return _xml(exc.status_code, error(exc.code, exc.message, rid), rid)
        _log.info("query_http", action=action, status=200)
        body = wire.ec2_answer(action, answer, rid) if is_ec2 else wire.sts_answer(action, answer, rid)
        return _xml(200, body, rid)

    async def post(request: Request) -> Response:
        region, service = _scope(request)
        target = request.headers.get("x-amz-target", "")
        if target or request.headers.get("content-type", "").startswith("application/x-amz-json"):
            return await cloudcontrol(request, target or "(no X-Amz-Target)", region)
        return await query(request, region, service)

    async def get(request: Request) -> Response:
        """S3 ``ListBuckets`` (``GET /``); nothing else of S3 is served."""
        rid = wire.request_id()
        if request.url.path != "/":
            message = "The infra-mcp sandbox serves only S3 ListBuckets (GET /)."
            return _xml(501, wire.s3_error("NotImplemented", message, rid), rid)
        answer = await run("ListBuckets", {}, _scope(request)[0])
        _log.info("s3_http", operation="ListBuckets", status=200)
        return _xml(200, wire.s3_list_buckets(answer), rid)

    return Starlette(routes=[Route("/", post, methods=["POST"]), Route("/{path:path}", get, methods=["GET"])])


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

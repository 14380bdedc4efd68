"""In-process fakes of upstream AWS MCP servers, answering with DESIGN §5's exact shapes.

``FakeAwsAccount`` is a tiny Cloud Control; ``call_aws_server`` fronts it with the ``call_aws`` contract
(parsing the command line as the real server does, with ``shlex.split``), ``run_script_server``
with a *restricted* reading of our generated ``aws___run_script`` code (it never executes it: it
checks the script's shape and decodes the one request literal).
"""

from __future__ import annotations

import ast
import itertools
import json
import re
import shlex
import uuid
from dataclasses import dataclass, field
from typing import Any

import jsonpatch
from mcp.server.mcpserver import MCPServer

from infra_mcp.upstream.run_script import RESULT_MARKER

ACCOUNT = "000000000000"


class FakeAwsError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def _pascal(flag: str) -> str:
    return "".join(part.capitalize() for part in flag.split("-"))


# ---- entry shapes (DESIGN §5) -------------------------------------------------------------------


def ok_entry(cli_command: str, response: dict[str, Any], *, operation: str = "GetResource") -> dict[str, Any]:
    return {
        "cli_command": cli_command,
        "response": {
            "error": None,
            "status_code": 200,
            "error_code": None,
            "pagination_token": None,
            "as_json": json.dumps(response),
        },
        "metadata": {
            "service": "cloudcontrol",
            "service_full_name": "AWS Cloud Control API",
            "operation": operation,
            "region_name": "us-east-1",
        },
        "validation_failures": None,
        "missing_context_failures": None,
        "failed_constraints": [],
    }


def aws_error_entry(cli_command: str, code: str, message: str, *, status: int = 400, operation: str = "GetResource"):
    entry = ok_entry(cli_command, {}, operation=operation)
    entry["response"].update(
        {
            "error": f"An error occurred ({code}) when calling the {operation} operation: {message}",
            "status_code": status,
            "error_code": code,
            "as_json": None,
        }
    )
    return entry


def refused_entry(cli_command: str, why: str) -> dict[str, Any]:
    return {"cli_command": cli_command, "error": f"Error while validating the command: {why}"}


# ---- the fake cloud ------------------------------------------------------------------------------


@dataclass
class FakeAwsAccount:
    """Just enough Cloud Control: async mutations (IN_PROGRESS, then SUCCESS on the next status poll)."""

    page_size: int = 2
    throttle_next: int = 0
    resources: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def handle(self, service: str, operation: str, params: dict[str, Any], region: str) -> dict[str, Any]:
        self.calls.append((service, operation, params))
        if self.throttle_next > 0:
            self.throttle_next -= 1
            raise FakeAwsError("ThrottlingException", "Rate exceeded", 400)
        if service == "sts" and operation == "GetCallerIdentity":
            return {"UserId": "AIDASANDBOX", "Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:user/fake"}
        handler = getattr(self, f"_{operation}", None)
        if service != "cloudcontrol" or handler is None:
            raise FakeAwsError("InvalidRequestException", f"unsupported {service} {operation}")
        return handler(params)

    def _event(self, type_name: str, identifier: str, operation: str, model: dict[str, Any] | None) -> dict[str, Any]:
        token = str(uuid.uuid4())
        event = {
            "TypeName": type_name,
            "Identifier": identifier,
            "RequestToken": token,
            "Operation": operation,
            "OperationStatus": "IN_PROGRESS",
            "EventTime": "2026-01-15T10:30:00Z",
        }
        if model is not None:
            event["ResourceModel"] = json.dumps(model)
        self.requests[token] = dict(event, OperationStatus="SUCCESS")
        return {"ProgressEvent": event}

    def _CreateResource(self, p: dict[str, Any]) -> dict[str, Any]:
        state = json.loads(p["DesiredState"])
        prefix = p["TypeName"].split("::")[-1].lower()
        identifier = f"{prefix}-{next(self._ids):04d}"
        self.resources[(p["TypeName"], identifier)] = state
        return self._event(p["TypeName"], identifier, "CREATE", state)

    def _existing(self, p: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.resources[(p["TypeName"], p["Identifier"])]
        except KeyError:
            raise FakeAwsError("ResourceNotFoundException", f"Resource {p['Identifier']} not found") from None

    def _GetResource(self, p: dict[str, Any]) -> dict[str, Any]:
        props = self._existing(p)
        return {
            "TypeName": p["TypeName"],
            "ResourceDescription": {"Identifier": p["Identifier"], "Properties": json.dumps(props)},
        }

    def _UpdateResource(self, p: dict[str, Any]) -> dict[str, Any]:
        props = self._existing(p)
        new = jsonpatch.apply_patch(props, json.loads(p["PatchDocument"]))
        self.resources[(p["TypeName"], p["Identifier"])] = new
        return self._event(p["TypeName"], p["Identifier"], "UPDATE", new)

    def _DeleteResource(self, p: dict[str, Any]) -> dict[str, Any]:
        self._existing(p)
        del self.resources[(p["TypeName"], p["Identifier"])]
        return self._event(p["TypeName"], p["Identifier"], "DELETE", None)

    def _ListResources(self, p: dict[str, Any]) -> dict[str, Any]:
        keys = sorted(k for k in self.resources if k[0] == p["TypeName"])
        token = p.get("NextToken") or "0"
        if not token.isdigit():
            raise FakeAwsError("InvalidRequestException", f"Invalid NextToken {token!r}")
        start = int(token)
        page = keys[start : start + self.page_size]
        answer: dict[str, Any] = {
            "TypeName": p["TypeName"],
            "ResourceDescriptions": [{"Identifier": k[1], "Properties": json.dumps(self.resources[k])} for k in page],
        }
        if start + self.page_size < len(keys):
            answer["NextToken"] = str(start + self.page_size)
        return answer

    def _GetResourceRequestStatus(self, p: dict[str, Any]) -> dict[str, Any]:
        try:
            return {"ProgressEvent": self.requests[p["RequestToken"]]}
        except KeyError:
            raise FakeAwsError("RequestTokenNotFoundException", "no such request") from None


# ---- call_aws ------------------------------------------------------------------------------------

_OPERATION = re.compile(r"^[a-z][a-z-]*$")


def call_aws_entry(cloud: FakeAwsAccount, cli_command: str) -> dict[str, Any]:
    """What the real server answers for one command (one entry)."""
    argv = shlex.split(cli_command)
    if len(argv) < 3 or argv[0] != "aws" or not _OPERATION.fullmatch(argv[2]):
        return refused_entry(cli_command, "not an aws command")
    service, operation = argv[1], _pascal(argv[2])
    flags = argv[3:]
    if "--cli-input-json" in flags:
        return refused_entry(cli_command, "The following parameters are missing: --type-name, --desired-state")
    if len(flags) % 2:
        return refused_entry(cli_command, "a flag without a value")
    params = {_pascal(flags[i][2:]): flags[i + 1] for i in range(0, len(flags), 2) if flags[i].startswith("--")}
    if len(params) * 2 != len(flags):
        return refused_entry(cli_command, "unexpected positional argument")
    region = params.pop("Region", "us-east-1")
    try:
        response = cloud.handle(service, operation, params, region)
    except FakeAwsError as exc:
        return aws_error_entry(cli_command, exc.code, exc.message, status=exc.status, operation=operation)
    return ok_entry(cli_command, response, operation=operation)


def call_aws_server(cloud: FakeAwsAccount, *, tool: str = "call_aws") -> MCPServer:
    server = MCPServer("fake-aws-api")
    server.commands = []  # type: ignore[attr-defined]

    @server.tool(name=tool)
    def call_aws(cli_command: str) -> list[dict[str, Any]]:
        server.commands.append(cli_command)  # type: ignore[attr-defined]
        return [call_aws_entry(cloud, cli_command)]

    return server


# ---- run_script (restricted reading, never exec) ---------------------------------------------------


def parse_script(code: str) -> ast.Module:
    """Parse a script that uses top-level ``await`` (as run_script scripts do)."""
    tree = compile(code, "<script>", "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    assert isinstance(tree, ast.Module)
    return tree


def read_script_request(code: str) -> dict[str, Any]:
    """The request our generated script carries, checked to be the one literal handed to call_boto3."""
    tree = parse_script(code)
    literals = [
        node.value.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Call)
        and ast.unparse(node.value.func) == "json.loads"
        and isinstance(node.value.args[0], ast.Constant)
    ]
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and ast.unparse(n.func) == "call_boto3"]
    assert len(literals) == 1, "exactly one request literal"
    assert len(calls) == 1, "exactly one call_boto3"
    assert ast.unparse(calls[0]) == "call_boto3(**__infra_mcp_request)"
    return json.loads(literals[0])


def run_script_server(cloud: FakeAwsAccount, *, tool: str = "aws___run_script") -> MCPServer:
    server = MCPServer("fake-aws-mcp")

    @server.tool(name=tool)
    def run_script(code: str) -> str:
        request = read_script_request(code)
        try:
            response = cloud.handle(
                request["service_name"], request["operation_name"], request["params"], request["region_name"]
            )
            out: dict[str, Any] = {"ok": True, "response": response}
        except FakeAwsError as exc:
            out = {"ok": False, "error_code": exc.code, "message": exc.message, "status_code": exc.status}
        return "script output:\n" + RESULT_MARKER + json.dumps(out) + "\n"

    return server

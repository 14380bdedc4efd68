"""Property-based fuzzing of every tool's arguments, generated from the input schemas the server lists.

One in-process server (the e2e harness's real ``mcp.Client``) takes every example, so an example that
killed or wedged it would fail every example after it. Each answer must be a success or our JSON error
with a known code, and must never show a traceback or an internal path. Deep nesting and lone
surrogates that the stdio transport itself cannot parse are covered in test_stdio_hostile_lines.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, ErrorData, Tool

from infra_mcp.errors import ALL_CODES
from infra_mcp.server.app import build_server
from infra_mcp.settings import Settings
from tests.e2e.conftest import settings_for
from tests.e2e.loop_helpers import vpc_stack

# A liveness guard, not a timing assertion: a call that never answers fails instead of hanging CI.
LIVENESS_SECONDS = 60
LEAKS = ("Traceback", "/site-packages/", "src/infra_mcp", "errors.pydantic.dev", 'File "')
ABSENT = object()


def nested(depth: int, leaf: Any = "x") -> Any:
    value: Any = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


HOSTILE_VALUES: list[Any] = [
    "x" * 200_000,
    "\ud800",
    "web\udfff",
    "١",
    "١٢",
    "２",
    "-dash-param",
    "--endpoint-url http://169.254.169.254/",
    "../../../etc/passwd",
    "",
    " ",
    "\x00",
    "a\nb",
    "plan-0123456789ab\n",
    "rule:auto-approval",
    None,
    -1,
    0,
    -(2**63),
    2**80,
    1.5,
    True,
    [],
    {},
    {"$ref": "#/x"},
    ["a"] * 2_000,
    nested(120),
    nested(60, "\ud800"),
    {"resources": [{"name": "\ud800", "type": "AWS::S3::Bucket"}]},
]
hostile = st.sampled_from(HOSTILE_VALUES)
small_text = st.text(max_size=30)
json_leaves = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | small_text
json_values = st.recursive(
    json_leaves, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(small_text, kids, max_size=3), max_leaves=8
)


def field_hints(plan_id: str) -> dict[str, st.SearchStrategy[Any]]:
    """Values that get past shape checks, so calls reach the services and the stores."""
    return {
        "project_id": st.sampled_from(["web", "nope", "WEB", "-web", "web-", "a" * 64]),
        "plan_id": st.sampled_from([plan_id, "plan-0123456789ab", "plan-١٢٣٤٥٦٧٨٩٠١٢", "plan-"]),
        "resource": st.sampled_from(["net-vpc", "vpc-0123", "arn:aws:s3:::x"]),
        "type": st.sampled_from(["AWS::S3::Bucket", "AWS::EC2::VPC", "S3::Bucket", "AWS::Nope::Nope"]),
        "region": st.sampled_from(["us-east-1", "us-east-١", "mars-1"]),
        "default_region": st.sampled_from(["eu-west-1", "us-east-١"]),
        "desired_state": st.sampled_from([vpc_stack(), {"resources": []}, {"resources": "all"}]),
        "members": st.sampled_from([[{"user": "alice", "role": "owner"}], [{"user": "x", "role": "god"}]]),
        "settings": st.sampled_from([{"default_region": "eu-west-1"}, {"state_location": "/etc"}]),
    }


def from_schema(schema: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values of the shape a (pydantic-made) JSON schema describes."""
    if "$ref" in schema:
        return from_schema(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    if "anyOf" in schema:
        return st.one_of([from_schema(option, defs) for option in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        return small_text
    if kind == "integer":
        return st.integers(min_value=schema.get("minimum", -5), max_value=50)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {}), defs), max_size=3)
    if kind == "object":
        values = schema.get("additionalProperties")
        return st.dictionaries(
            small_text, from_schema(values, defs) if isinstance(values, dict) else json_values, max_size=3
        )
    return json_values


def arguments_for(tool: Tool, plan_id: str) -> st.SearchStrategy[dict[str, Any]]:
    """Arguments for one tool: schema-shaped, helpfully valid, hostile, missing or extra, field by field."""
    schema = tool.input_schema
    defs = schema.get("$defs", {})
    hints = field_hints(plan_id)
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for name, prop in schema.get("properties", {}).items():
        shaped = from_schema(prop, defs)
        choices = [hints[name], shaped, hostile] if name in hints else [shaped, hostile]
        fields[name] = st.one_of([*choices, st.just(ABSENT)])
    extras = st.dictionaries(st.sampled_from(["extra", "__proto__", "ctx", "\ud800"]), hostile, max_size=2)
    return st.builds(
        lambda values, more: {**more, **{k: v for k, v in values.items() if v is not ABSENT}},
        st.fixed_dictionaries(fields),
        extras,
    )


def assert_structured_answer(tool: str, result: CallToolResult) -> None:
    text = "\n".join(getattr(block, "text", "") for block in result.content)
    for leak in LEAKS:
        assert leak not in text, f"{tool} leaked {leak!r}: {text[:500]}"
    if not result.is_error:
        assert result.structured_content is not None, tool
        return
    payload = json.loads(text)
    assert set(payload) >= {"code", "message", "request_id", "timestamp", "details"}, tool
    assert payload["code"] in ALL_CODES, f"{tool}: {payload}"
    assert payload["code"] != "INTERNAL_001", f"{tool} hit a bug: {payload}"


class Fuzzed:
    """One live client in a background event loop, called from Hypothesis's (synchronous) examples."""

    def __init__(self, portal: BlockingPortal, client: Client, tools: dict[str, Tool], plan_id: str) -> None:
        self.portal = portal
        self.client = client
        self.tools = tools
        self.plan_id = plan_id

    async def _call(self, name: str, arguments: dict[str, Any]) -> CallToolResult:
        with anyio.fail_after(LIVENESS_SECONDS):
            return await self.client.call_tool(name, arguments)

    def call(self, name: str, arguments: dict[str, Any]) -> CallToolResult:
        return self.portal.call(self._call, name, arguments)


def _tool_names() -> list[str]:
    """Tool names for parametrizing (collection time); the test checks them against the client's listing."""
    server = build_server(Settings(data_dir=Path("unused-by-list-tools"), user="fuzz"))
    return sorted(tool.name for tool in anyio.run(server.list_tools))


TOOL_NAMES = _tool_names()


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    """One server for every tool's examples: whatever one example does, the next still needs it alive."""
    data_dir = tmp_path_factory.mktemp("fuzz") / "data"
    with start_blocking_portal() as portal:
        client = portal.wrap_async_context_manager(Client(build_server(settings_for(data_dir, "alice"))))
        with client as live:
            fuzzed = Fuzzed(portal, live, {}, "")
            assert not fuzzed.call("create_project", {"project_id": "web"}).is_error
            made = fuzzed.call("plan_changes", {"project_id": "web", "desired_state": vpc_stack()})
            assert made.structured_content is not None
            fuzzed.plan_id = made.structured_content["plan_id"]
            fuzzed.tools = {tool.name: tool for tool in portal.call(live.list_tools).tools}
            yield fuzzed


def test_the_fuzzer_covers_every_tool_the_client_lists(fuzzed: Fuzzed) -> None:
    assert sorted(fuzzed.tools) == TOOL_NAMES
    assert len(TOOL_NAMES) >= 20


@pytest.mark.parametrize("tool_name", TOOL_NAMES)
@settings(
    max_examples=8,  # per tool: about 160 calls in all, a few seconds
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_every_tool_answers_any_arguments_with_a_success_or_a_coded_json_error_and_stays_up(
    fuzzed: Fuzzed, tool_name: str, data: st.DataObject
) -> None:
    tool = fuzzed.tools[tool_name]
    arguments = data.draw(arguments_for(tool, fuzzed.plan_id), label="arguments")
    protocol_error: ErrorData | None = None
    try:
        result = fuzzed.call(tool.name, arguments)
    except MCPError as exc:
        protocol_error = exc.error
    if protocol_error is not None:
        # A protocol-level error is allowed only if it is ours (coded JSON), never a bare internal error.
        assert json.loads(protocol_error.message)["code"] in ALL_CODES, f"{tool.name}: {protocol_error}"
    else:
        assert_structured_answer(tool.name, result)
    alive = fuzzed.call("list_projects", {})
    assert not alive.is_error

"""Errors at the MCP boundary: bad arguments get the project's JSON error, never the SDK's pydantic text."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR
from pydantic import BaseModel

from infra_mcp.server.boundary import InfraMCPServer
from tests.e2e.conftest import ClientFactory, call_error, call_ok


@pytest.mark.parametrize(
    ("tool", "args", "field"),
    [
        ("get_project", {"project_id": 123}, "project_id"),
        ("get_project", {}, "project_id"),
        ("get_project", {"project_id": None}, "project_id"),
        ("restore_state", {"project_id": "web", "version": "one"}, "version"),
        ("restore_state", {"project_id": "web", "version": -3}, "version"),
        ("plan_changes", {"project_id": "web", "desired_state": ["not", "a", "dict"]}, "desired_state"),
        (
            "plan_resource",
            {"project_id": "web", "action": "create", "resource": "b", "type": "S3::Bucket", "tags": {"k": 1}},
            "tags.k",
        ),
        ("plan_resource", {"project_id": "web", "action": "rename", "resource": "b"}, "action"),
        (
            "import_resources",
            {"project_id": "web", "resources": [{"name": "b", "type": "S3::Bucket"}]},
            "resources.0.identifier",
        ),
        ("list_plans", {"project_id": "web", "status": "nonsense"}, "status"),
        ("discover_resources", {"project_id": "web", "types": ["AWS::" + "S3" * 5000]}, "types.0"),
        ("detect_drift", {"project_id": "web", "names": ["n" * 5000]}, "names.0"),
    ],
)
async def test_arguments_of_the_wrong_shape_get_validation_001_naming_the_field(
    connect: ClientFactory, tool: str, args: dict[str, Any], field: str
) -> None:
    async with connect("alice") as alice:
        error = await call_error(alice, tool, args)
    assert error["code"] == "VALIDATION_001"
    assert field in [finding["field"] for finding in error["details"]["findings"]]
    assert all(finding["expected"] for finding in error["details"]["findings"])
    assert "pydantic" not in json.dumps(error)


async def test_a_lone_surrogate_in_an_argument_gets_validation_001(connect: ClientFactory) -> None:
    async with connect("alice") as alice:
        error = await call_error(alice, "get_project", {"project_id": "web\ud800"})
    assert error["code"] == "VALIDATION_001"
    assert error["details"]["findings"][0]["field"] == "project_id"


@pytest.mark.parametrize("digits", ["١", "١٢", "２", "๓"])
async def test_non_ascii_digits_are_not_numbers_for_versions(connect: ClientFactory, digits: str) -> None:
    async with connect("alice") as alice:
        await call_ok(alice, "create_project", {"project_id": "web"})
        for tool, args in [
            ("restore_state", {"project_id": "web", "version": digits}),
            ("plan_changes", {"project_id": "web", "to_version": digits}),
        ]:
            assert (await call_error(alice, tool, args))["code"] == "VALIDATION_001", tool
        with pytest.raises(MCPError) as caught:
            await alice.read_resource(f"infra://projects/web/state/history/{digits}")
        assert json.loads(caught.value.error.message)["code"] == "VALIDATION_001"


async def test_validation_001_from_a_resource_is_not_sent_as_an_internal_error(connect: ClientFactory) -> None:
    async with connect("alice") as alice:
        await call_ok(alice, "create_project", {"project_id": "web"})
        with pytest.raises(MCPError) as caught:
            await alice.read_resource("infra://projects/web/state/history/zero")
    assert json.loads(caught.value.error.message)["code"] == "VALIDATION_001"
    assert caught.value.error.code != INTERNAL_ERROR


async def test_a_region_with_non_ascii_digits_is_refused(connect: ClientFactory) -> None:
    async with connect("alice") as alice:
        error = await call_error(alice, "create_project", {"project_id": "web", "default_region": "us-east-١"})
    assert error["code"] == "VALIDATION_001"


class _Answer(BaseModel):
    n: int


async def test_a_result_that_fails_its_output_schema_is_internal_001_json_without_the_details() -> None:
    server = InfraMCPServer(name="boundary-test")

    @server.tool(name="broken")
    async def broken() -> _Answer:
        return {"n": "not a number"}  # type: ignore[return-value]

    async with Client(server) as client:
        result = await client.call_tool("broken", {})
    assert result.is_error
    payload = json.loads(result.content[0].text)  # type: ignore[union-attr]
    assert payload["code"] == "INTERNAL_001"
    assert "not a number" not in result.content[0].text  # type: ignore[union-attr]

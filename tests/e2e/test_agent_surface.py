"""The surface an agent pays for on every turn: tools/list, small, exact and snake_case."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from mcp import Client

from infra_mcp.domain.plan import Plan
from tests.e2e.conftest import ClientFactory

# Hosts put the whole tools/list answer, output schemas included, into the model's context on
# every turn: about 6k tokens is the most this server may cost before the first call.
TOOLS_LIST_BUDGET = 24_000
DESCRIPTION_MAX = 250

_SNAKE = re.compile(r"[a-z][a-z0-9_]*")
# Keys whose value is a schema (or a list / map of schemas), where an empty `{}` would mean "anything".
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_MAPS = ("properties", "$defs", "patternProperties")
_SCHEMA_VALUES = ("items", "additionalProperties", "not", "contains")


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


async def _tools_list(client: Client) -> dict[str, Any]:
    result = await client.list_tools()
    wire: dict[str, Any] = json.loads(result.model_dump_json(by_alias=True, exclude_none=True))
    return wire


def empty_schemas(schema: Any, where: str = "#") -> list[str]:
    """Every place in ``schema`` holding an empty schema ``{}``."""
    found: list[str] = []
    if not isinstance(schema, dict):
        return found
    if not schema:
        return [where]
    for key in _SCHEMA_VALUES:
        if isinstance(schema.get(key), dict):
            found += empty_schemas(schema[key], f"{where}/{key}")
    for key in _SCHEMA_LISTS:
        for i, sub in enumerate(schema.get(key) or []):
            found += empty_schemas(sub, f"{where}/{key}/{i}")
    for key in _SCHEMA_MAPS:
        for name, sub in (schema.get(key) or {}).items():
            found += empty_schemas(sub, f"{where}/{key}/{name}")
    return found


def property_names(schema: Any) -> set[str]:
    """Every property name declared anywhere in ``schema``."""
    names: set[str] = set()
    if isinstance(schema, dict):
        for name, sub in (schema.get("properties") or {}).items():
            names.add(name)
            names |= property_names(sub)
        for key, value in schema.items():
            if key != "properties":
                names |= property_names(value)
    elif isinstance(schema, list):
        for item in schema:
            names |= property_names(item)
    return names


async def test_the_whole_tools_list_fits_the_agent_context_budget(connect: ClientFactory) -> None:
    async with connect("alice") as client:
        wire = await _tools_list(client)
    total = len(_compact(wire))
    shares = sorted(((len(_compact(t)), t["name"]) for t in wire["tools"]), reverse=True)
    report = "\n".join(
        f"  {name:24} {size:6} chars ({size / total:5.1%}), output schema "
        f"{len(_compact(next(t for t in wire['tools'] if t['name'] == name).get('outputSchema', {})))}"
        for size, name in shares
    )
    print(f"tools/list: {total} characters for {len(shares)} tools (budget {TOOLS_LIST_BUDGET})\n{report}")
    assert total <= TOOLS_LIST_BUDGET, f"tools/list is {total} characters, over {TOOLS_LIST_BUDGET}:\n{report}"


async def test_every_tool_has_an_output_schema_and_no_empty_schema(connect: ClientFactory) -> None:
    async with connect("alice") as client:
        wire = await _tools_list(client)
    for tool in wire["tools"]:
        assert tool.get("outputSchema", {}).get("type") == "object", tool["name"]
        for part in ("inputSchema", "outputSchema"):
            assert empty_schemas(tool[part]) == [], (tool["name"], part, empty_schemas(tool[part]))


def test_the_full_plan_has_no_empty_schema_either() -> None:
    assert empty_schemas(Plan.model_json_schema()) == []


async def test_every_field_on_the_wire_is_snake_case(connect: ClientFactory) -> None:
    async with connect("alice") as client:
        wire = await _tools_list(client)
    for tool in wire["tools"]:
        assert _SNAKE.fullmatch(tool["name"]), tool["name"]
        for part in ("inputSchema", "outputSchema"):
            odd = sorted(n for n in property_names(tool[part]) if not _SNAKE.fullmatch(n))
            assert odd == [], (tool["name"], part, odd)


async def test_tool_descriptions_are_short_and_cite_nothing_the_user_lacks(connect: ClientFactory) -> None:
    async with connect("alice") as client:
        wire = await _tools_list(client)
        templates = await client.list_resource_templates()
        resources = await client.list_resources()
    texts = {t["name"]: t["description"] for t in wire["tools"]}
    texts |= {t.uri_template: t.description or "" for t in templates.resource_templates}
    texts |= {str(r.uri): r.description or "" for r in resources.resources}
    for name, text in texts.items():
        assert "DESIGN" not in text, (name, text)
        assert "§" not in text, (name, text)
        assert "\n" not in text, (name, text)
    for tool in wire["tools"]:
        assert len(tool["description"]) <= DESCRIPTION_MAX, (tool["name"], len(tool["description"]))
        # One or two sentences: what it is for, and what comes next.
        sentences = [s for s in re.split(r"(?<=[.!?])\s+", tool["description"].strip()) if s]
        assert 1 <= len(sentences) <= 2, (tool["name"], sentences)


@pytest.mark.parametrize("uri_suffix", ["", "/diff"])
async def test_a_plan_result_points_at_its_full_plan_and_diff(connect: ClientFactory, uri_suffix: str) -> None:
    async with connect("alice") as client:
        await client.call_tool("create_project", {"project_id": "web"})
        made = await client.call_tool(
            "plan_resource",
            {
                "project_id": "web",
                "action": "create",
                "resource": "net",
                "type": "AWS::EC2::VPC",
                "properties": {"CidrBlock": "10.0.0.0/16"},
            },
        )
        view = made.structured_content
        assert view is not None
        assert view["changes"] == ["create net (AWS::EC2::VPC) [low]"]
        assert view["plan_uri"] == f"infra://projects/web/plans/{view['plan_id']}"
        assert view["diff_uri"] == view["plan_uri"] + "/diff"
        body = (await client.read_resource(view["plan_uri"] + uri_suffix)).contents[0]
        text = body.text  # type: ignore[union-attr]
        assert view["plan_id"] in text

"""Every project and state tool and resource, through a real MCP client."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from infra_mcp.domain.state import StateFile, StateOwner, StateResource
from infra_mcp.stores.state_local import LocalStateStore
from infra_mcp.stores.state_scope import IncarnationScope
from tests.e2e.conftest import ClientFactory, call_error, call_ok, read_json

EXPECTED_TOOLS = {
    "create_project",
    "get_project",
    "list_projects",
    "update_project",
    "delete_project",
    "list_resources",
    "get_resource",
    "get_state_history",
    "restore_state",
}


async def _seed_state(client: Client, data_dir: Path, project_id: str, versions: int = 2) -> IncarnationScope:
    """Write state versions directly, as the project's incarnation (here we test reading, not execution)."""
    incarnation = (await read_json(client, f"infra://projects/{project_id}"))["incarnation"]
    store = IncarnationScope(
        LocalStateStore(data_dir / "state"), StateOwner(project_id=project_id, incarnation=incarnation)
    )
    state = StateFile.empty(project_id)
    for n in range(1, versions + 1):
        resources = [
            StateResource(id=f"vpc-{n:04d}", name="net", type="AWS::EC2::VPC", tags={"env": "dev"}),
            StateResource(id=f"bucket-{n}", name="logs", type="AWS::S3::Bucket", arn=f"arn:aws:s3:::bucket-{n}"),
        ][:n]
        state = await store.write(state.next_version(resources, user="alice", description=f"v{n}"))
    return store


async def test_every_tool_has_an_output_schema_and_honest_annotations(connect: ClientFactory) -> None:
    async with connect() as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) >= EXPECTED_TOOLS
    for tool in tools.values():
        assert tool.output_schema is not None, tool.name
        assert tool.description, tool.name
    assert tools["list_resources"].annotations.read_only_hint is True
    assert tools["delete_project"].annotations.destructive_hint is True
    assert not tools["create_project"].annotations.read_only_hint  # the spec default (false), left out


async def test_create_get_list_update_and_read_the_project_resources(connect: ClientFactory) -> None:
    async with connect() as client:
        created = await call_ok(client, "create_project", {"project_id": "web", "name": "Web", "description": "d"})
        assert created["your_role"] == "owner"
        got = await call_ok(client, "get_project", {"project_id": "web"})
        assert got["name"] == "Web"
        listed = await call_ok(client, "list_projects")
        assert [p["project_id"] for p in listed["projects"]] == ["web"]
        updated = await call_ok(
            client,
            "update_project",
            {"project_id": "web", "description": "new", "settings": {"default_region": "eu-west-1"}},
        )
        assert updated["settings"]["default_region"] == "eu-west-1"
        assert [p["id"] for p in await read_json(client, "infra://projects")] == ["web"]
        assert (await read_json(client, "infra://projects/web"))["description"] == "new"
        state = await read_json(client, "infra://projects/web/state")
        assert state["serial"] == 0
        assert state["resources"] == []
        assert await read_json(client, "infra://projects/web/state/history") == []


@pytest.mark.parametrize("bad", ["", "Web", "../x", "a/b", "a b", "a\x00b", "x" * 64, ".."])
async def test_bad_project_ids_get_validation_001_and_nothing_is_created(connect: ClientFactory, bad: str) -> None:
    async with connect() as client:
        error = await call_error(client, "create_project", {"project_id": bad})
        assert error["code"] == "VALIDATION_001"
        assert (await call_ok(client, "list_projects"))["projects"] == []


async def test_duplicate_ids_and_unknown_projects_have_their_codes(connect: ClientFactory) -> None:
    async with connect() as client:
        await call_ok(client, "create_project", {"project_id": "web"})
        assert (await call_error(client, "create_project", {"project_id": "web"}))["code"] == "CONFLICT_001"
        assert (await call_error(client, "get_project", {"project_id": "nope"}))["code"] == "RESOURCE_001"


async def test_a_member_with_an_unknown_role_is_refused(connect: ClientFactory) -> None:
    async with connect() as client:
        await call_ok(client, "create_project", {"project_id": "web"})
        error = await call_error(
            client,
            "update_project",
            {"project_id": "web", "members": [{"user": "alice", "role": "owner"}, {"user": "bob", "role": "god"}]},
        )
        assert error["code"] == "VALIDATION_001"
        project = await call_ok(client, "get_project", {"project_id": "web"})
        assert list(project["members"]) == ["alice"]


async def test_one_user_is_refused_another_users_project_by_tool_and_by_resource(connect: ClientFactory) -> None:
    async with connect("alice") as alice:
        await call_ok(alice, "create_project", {"project_id": "alices"})
    async with connect("mallory") as mallory:
        assert (await call_ok(mallory, "list_projects"))["projects"] == []
        for tool, args in [
            ("get_project", {}),
            ("list_resources", {}),
            ("get_state_history", {}),
            ("delete_project", {}),
            ("update_project", {"name": "mine"}),
            ("restore_state", {"version": 1}),
        ]:
            error = await call_error(mallory, tool, {"project_id": "alices", **args})
            assert error["code"] == "RESOURCE_001", tool  # as if it did not exist: no existence probe
        assert await read_json(mallory, "infra://projects") == []
        with pytest.raises(MCPError) as caught:
            await mallory.read_resource("infra://projects/alices/state")
        assert json.loads(caught.value.error.message)["code"] == "RESOURCE_001"
    async with connect("alice") as alice:
        assert (await call_ok(alice, "get_project", {"project_id": "alices"}))["name"] == "alices"


async def test_a_viewer_can_read_but_not_change(connect: ClientFactory) -> None:
    async with connect("alice") as alice:
        await call_ok(alice, "create_project", {"project_id": "web"})
        await call_ok(
            alice,
            "update_project",
            {"project_id": "web", "members": [{"user": "alice", "role": "owner"}, {"user": "vic", "role": "viewer"}]},
        )
    async with connect("vic") as vic:
        assert (await call_ok(vic, "get_project", {"project_id": "web"}))["your_role"] == "viewer"
        assert (await call_error(vic, "update_project", {"project_id": "web", "name": "x"}))["code"] == "AUTH_001"


async def test_resources_are_listed_filtered_and_found_by_name_or_physical_id(
    connect: ClientFactory, data_dir: Path
) -> None:
    async with connect() as client:
        await call_ok(client, "create_project", {"project_id": "web"})
        await _seed_state(client, data_dir, "web")
        everything = await call_ok(client, "list_resources", {"project_id": "web"})
        assert everything["count"] == 2
        assert everything["serial"] == 2
        vpcs = await call_ok(client, "list_resources", {"project_id": "web", "type": "EC2::VPC"})
        assert [r["name"] for r in vpcs["resources"]] == ["net"]
        tagged = await call_ok(client, "list_resources", {"project_id": "web", "tag": "env=dev"})
        assert [r["name"] for r in tagged["resources"]] == ["net"]
        failed = await call_ok(client, "list_resources", {"project_id": "web", "status": "failed"})
        assert failed["count"] == 0
        by_id = await call_ok(client, "get_resource", {"project_id": "web", "resource": "vpc-0002"})
        assert by_id["name"] == "net"
        by_arn = await call_ok(client, "get_resource", {"project_id": "web", "resource": "arn:aws:s3:::bucket-2"})
        assert by_arn["name"] == "logs"
        missing = await call_error(client, "get_resource", {"project_id": "web", "resource": "ghost"})
        assert missing["code"] == "RESOURCE_001"
        bad_status = await client.call_tool("list_resources", {"project_id": "web", "status": "exploded"})
        assert bad_status.is_error


async def test_history_resources_and_restore_make_an_old_version_current_again(
    connect: ClientFactory, data_dir: Path
) -> None:
    async with connect() as client:
        await call_ok(client, "create_project", {"project_id": "web"})
        await _seed_state(client, data_dir, "web", versions=2)
        history = await call_ok(client, "get_state_history", {"project_id": "web"})
        assert [v["serial"] for v in history["versions"]] == [2, 1]
        assert [v["serial"] for v in await read_json(client, "infra://projects/web/state/history")] == [2, 1]
        v1 = await read_json(client, "infra://projects/web/state/history/1")
        assert v1["serial"] == 1
        assert len(v1["resources"]) == 1
        refused = await call_error(client, "restore_state", {"project_id": "web", "version": 1})
        assert refused["code"] == "CONFLICT_001"
        # v2 holds net as vpc-0002 and logs; v1 only net as vpc-0001: both v2 resources would be forgotten
        assert [(r["name"], r["id"]) for r in refused["details"]["resources"]] == [
            ("net", "vpc-0002"),
            ("logs", "bucket-2"),
        ]
        restored = await call_ok(client, "restore_state", {"project_id": "web", "version": 1, "forget_resources": True})
        assert restored["serial"] == 3
        assert restored["resource_count"] == 1
        assert [r["id"] for r in restored["forgotten_resources"]] == ["vpc-0002", "bucket-2"]
        current = await read_json(client, "infra://projects/web/state")
        assert current["serial"] == 3
        assert current["metadata"]["changeDescription"] == "Restored state version 1"
        for bad in ("0", "x", "99"):
            with pytest.raises(MCPError):
                await client.read_resource(f"infra://projects/web/state/history/{bad}")


async def test_a_corrupted_state_file_is_state_001_naming_the_version_to_restore(
    connect: ClientFactory, data_dir: Path
) -> None:
    async with connect() as client:
        await call_ok(client, "create_project", {"project_id": "web"})
        await _seed_state(client, data_dir, "web", versions=2)
        state_file = data_dir / "state" / "web" / "state.json"
        state_file.write_text(state_file.read_text()[:40])  # truncated
        error = await call_error(client, "list_resources", {"project_id": "web"})
        assert error["code"] == "STATE_001"
        assert error["details"]["newest_valid_version"] == 2
        await call_ok(client, "restore_state", {"project_id": "web", "version": 2})
        assert (await call_ok(client, "list_resources", {"project_id": "web"}))["count"] == 2


async def test_a_hand_edited_state_file_is_state_001(connect: ClientFactory, data_dir: Path) -> None:
    async with connect() as client:
        await call_ok(client, "create_project", {"project_id": "web"})
        await _seed_state(client, data_dir, "web", versions=1)
        state_file = data_dir / "state" / "web" / "state.json"
        document = json.loads(state_file.read_text())
        document["resources"][0]["id"] = "vpc-edited"
        state_file.write_text(json.dumps(document))
        assert (await call_error(client, "get_resource", {"project_id": "web", "resource": "net"}))[
            "code"
        ] == "STATE_001"


async def test_delete_is_refused_while_resources_exist_and_works_when_empty(
    connect: ClientFactory, data_dir: Path
) -> None:
    async with connect() as client:
        await call_ok(client, "create_project", {"project_id": "web"})
        await _seed_state(client, data_dir, "web", versions=1)
        assert (await call_error(client, "delete_project", {"project_id": "web"}))["code"] == "CONFLICT_001"
        await call_ok(client, "create_project", {"project_id": "empty"})
        await call_ok(client, "delete_project", {"project_id": "empty"})
        assert [p["project_id"] for p in (await call_ok(client, "list_projects"))["projects"]] == ["web"]


async def test_prompts_are_served_with_their_arguments(connect: ClientFactory) -> None:
    async with connect() as client:
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
        assert "setup-project" in prompts
        rendered = await client.get_prompt("setup-project", {"goal": "a dev VPC"})
        assert "a dev VPC" in rendered.messages[0].content.text  # type: ignore[union-attr]

"""The project and state surface over real stdio, as an agent host launches it (`infra-mcp serve`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from infra_mcp.domain.state import StateFile, StateOwner, StateResource
from infra_mcp.stores.state_local import LocalStateStore
from infra_mcp.stores.state_scope import IncarnationScope
from tests.e2e.conftest import call_error, call_ok, read_json, stdio_params

pytestmark = pytest.mark.slow


async def test_every_project_and_state_tool_and_resource_works_over_stdio(data_dir: Path) -> None:
    async with Client(stdio_params(data_dir, "alice")) as alice:
        assert (await call_ok(alice, "create_project", {"project_id": "web", "name": "Web"}))["your_role"] == "owner"
        assert (await call_ok(alice, "get_project", {"project_id": "web"}))["name"] == "Web"
        assert [p["project_id"] for p in (await call_ok(alice, "list_projects"))["projects"]] == ["web"]
        await call_ok(
            alice,
            "update_project",
            {"project_id": "web", "members": [{"user": "alice", "role": "owner"}, {"user": "vic", "role": "viewer"}]},
        )

        incarnation = (await read_json(alice, "infra://projects/web"))["incarnation"]
        store = IncarnationScope(
            LocalStateStore(data_dir / "state"), StateOwner(project_id="web", incarnation=incarnation)
        )
        first = StateFile.empty("web").next_version(
            [StateResource(id="vpc-1", name="net", type="AWS::EC2::VPC", tags={"env": "dev"})],
            user="alice",
            description="one",
        )
        await store.write(first)
        await store.write(first.next_version([], user="alice", description="none"))

        assert (await call_ok(alice, "list_resources", {"project_id": "web"}))["count"] == 0
        history = await call_ok(alice, "get_state_history", {"project_id": "web"})
        assert [v["serial"] for v in history["versions"]] == [2, 1]
        await call_ok(alice, "restore_state", {"project_id": "web", "version": 1})
        assert (await call_ok(alice, "get_resource", {"project_id": "web", "resource": "vpc-1"}))["name"] == "net"
        tagged = await call_ok(alice, "list_resources", {"project_id": "web", "tag": "env"})
        assert tagged["count"] == 1

        assert [p["id"] for p in await read_json(alice, "infra://projects")] == ["web"]
        assert (await read_json(alice, "infra://projects/web"))["name"] == "Web"
        assert (await read_json(alice, "infra://projects/web/state"))["serial"] == 3
        assert len(await read_json(alice, "infra://projects/web/state/history")) == 3
        assert (await read_json(alice, "infra://projects/web/state/history/2"))["resources"] == []

        assert (await call_error(alice, "delete_project", {"project_id": "web"}))["code"] == "CONFLICT_001"
        await call_ok(alice, "create_project", {"project_id": "scratch"})
        assert (await call_ok(alice, "delete_project", {"project_id": "scratch"}))["deleted"] is True
        status = (await call_ok(alice, "get_server_status"))["upstream"]
        assert status["kind"] == "sandbox"

    async with Client(stdio_params(data_dir, "mallory")) as mallory:
        assert (await call_ok(mallory, "list_projects"))["projects"] == []
        assert (await call_error(mallory, "get_project", {"project_id": "web"}))["code"] == "RESOURCE_001"
        with pytest.raises(MCPError) as caught:
            await mallory.read_resource("infra://projects/web/state/history")
        assert json.loads(caught.value.error.message)["code"] == "RESOURCE_001"

    async with Client(stdio_params(data_dir, "vic")) as vic:
        assert (await call_ok(vic, "list_resources", {"project_id": "web"}))["count"] == 1
        assert (await call_error(vic, "restore_state", {"project_id": "web", "version": 2}))["code"] == "AUTH_001"


async def test_a_malformed_prompt_file_stops_start_up_with_a_message_naming_it(tmp_path: Path) -> None:
    from infra_mcp.server.app import build_server
    from infra_mcp.server.prompts import PromptFileError, load_prompts, prompt_files

    folder = tmp_path / "prompts"
    folder.mkdir()
    (folder / "broken.md").write_text("+++\nname = 'Bad Name'\n+++\nbody")
    with pytest.raises(PromptFileError, match=r"broken\.md"):
        build_server(prompts=load_prompts(prompt_files(folder)))

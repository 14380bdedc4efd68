"""The team server: ``serve --http`` as an OAuth 2.1 resource server, with real MCP clients.

A local identity provider on 127.0.0.1 publishes discovery and JWKS documents and mints tokens.
The acting user of every call is the verified token's claim: INFRA_MCP_USER (here "mallory") never
acts, two users are isolated end to end, and approver != author holds on verified identities.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.session import ElicitationFnT
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import ResourceListChangedNotification

from tests.e2e.conftest import call_error, call_ok, read_json
from tests.e2e.http_server import HttpServer, free_port, http_server
from tests.e2e.loop_helpers import Human, make_plan, plans_at_terminal, plans_without_terminal, vpc_stack
from tests.local_idp import LocalIdP, local_idp

pytestmark = pytest.mark.slow

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "probe", "version": "0"}},
}
PENDING = "infra://plans/pending"
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


class Team:
    """The IdP and the server, and how to reach the server as someone."""

    def __init__(self, idp: LocalIdP, server: HttpServer) -> None:
        self.idp = idp
        self.server = server
        self.resource = f"{server.base_url}/mcp"

    def token(self, user: str, **claims: Any) -> str:
        return self.idp.mint(user, self.resource, **claims)

    def post(self, token: str | None, **headers: str) -> httpx2.Response:
        sent = dict(HEADERS, **headers)
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        return httpx2.post(self.server.mcp_url, json=INITIALIZE, headers=sent, timeout=30)

    @asynccontextmanager
    async def client(self, user: str, human: Any = None, **kwargs: Any) -> AsyncIterator[Client]:
        headers = {"Authorization": f"Bearer {self.token(user)}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as http,
            Client(
                streamable_http_client(self.server.mcp_url, http_client=http),
                elicitation_callback=cast(ElicitationFnT, human or Human()),
                **kwargs,
            ) as client,
        ):
            yield client


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    """One IdP and one team server for the module (starting them is the slow part)."""
    data = tmp_path_factory.mktemp("team") / "data"
    port = free_port()
    with (
        local_idp() as idp,
        http_server(
            data,
            port=port,
            user="mallory",  # INFRA_MCP_USER: must never be the acting user on a team server
            INFRA_MCP_AUTH_ISSUER=idp.issuer,
            INFRA_MCP_PUBLIC_URL=f"http://127.0.0.1:{port}",
            INFRA_MCP_AUTH_USER_CLAIM="preferred_username",
            INFRA_MCP_AUTH_REQUIRED_SCOPES="infra",
        ) as server,
    ):
        yield Team(idp, server)


def challenge(response: httpx2.Response) -> str:
    return response.headers.get("www-authenticate", "")


def test_protected_resource_metadata_names_this_resource_and_the_issuer(team: Team) -> None:
    for path in ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"):
        document = httpx2.get(team.server.base_url + path, timeout=10).json()
        assert document["resource"] == team.resource
        assert document["authorization_servers"] == [team.idp.issuer]
        assert document["scopes_supported"] == ["infra"]
        assert document["bearer_methods_supported"] == ["header"]


def test_a_request_without_a_token_gets_401_pointing_at_the_metadata(team: Team) -> None:
    answer = team.post(None)
    assert answer.status_code == 401
    assert challenge(answer).startswith("Bearer ")
    assert f'resource_metadata="{team.server.base_url}/.well-known/oauth-protected-resource/mcp"' in challenge(answer)


@pytest.mark.parametrize(
    ("claims", "said"),
    [
        ({"aud": "http://127.0.0.1:1/mcp"}, "another audience"),
        ({"exp": 1_000_000_000}, "expired"),
        ({"iss": "http://127.0.0.1:1/realms/evil"}, "another issuer"),
        ({"nbf": 4_000_000_000}, "not valid yet"),
    ],
    ids=["wrong-audience", "expired", "unknown-issuer", "not-yet-valid"],
)
def test_a_refused_token_gets_401_invalid_token_with_the_reason(team: Team, claims: dict[str, Any], said: str) -> None:
    answer = team.post(team.token("alice", **claims))
    assert answer.status_code == 401
    assert 'error="invalid_token"' in challenge(answer)
    assert said in challenge(answer)
    assert "resource_metadata=" in challenge(answer)
    assert answer.json()["error"] == "invalid_token"


def test_a_token_whose_header_holds_odd_characters_still_gets_a_clean_401(team: Team) -> None:
    odd = json.dumps({"alg": "RS256\u20ac\r\nX-Evil: 1", "kid": "key-1"}).encode()
    header = base64.urlsafe_b64encode(odd).decode().rstrip("=")
    _, payload, signature = team.token("alice").split(".")
    answer = team.post(f"{header}.{payload}.{signature}")
    assert answer.status_code == 401
    assert "X-Evil" not in answer.headers
    assert challenge(answer).isascii()


def test_a_bad_signature_gets_401_invalid_token(team: Team) -> None:
    header, _, signature = team.token("alice").split(".")
    _, payload, _ = team.token("bob").split(".")
    answer = team.post(f"{header}.{payload}.{signature}")
    assert answer.status_code == 401
    assert 'error="invalid_token"' in challenge(answer)


def test_a_token_without_the_required_scope_gets_403_insufficient_scope(team: Team) -> None:
    answer = team.post(team.token("alice", scope="openid"))
    assert answer.status_code == 403
    assert 'error="insufficient_scope"' in challenge(answer)


def test_a_malformed_authorization_header_gets_400_invalid_request(team: Team) -> None:
    answer = httpx2.post(team.server.mcp_url, json=INITIALIZE, headers={**HEADERS, "Authorization": "Basic abc"})
    assert answer.status_code == 400
    assert 'error="invalid_request"' in challenge(answer)


def test_a_valid_token_opens_a_session(team: Team) -> None:
    answer = team.post(team.token("alice"))
    assert answer.status_code == 200
    assert answer.headers.get("mcp-session-id")


def test_tokens_are_never_written_to_the_log(team: Team) -> None:
    token = team.token("alice", aud="http://127.0.0.1:1/mcp")
    team.post(token)
    log = team.server.stderr
    assert "token_refused" in log
    assert token.split(".")[2] not in log
    assert token.split(".")[1] not in log


async def test_the_acting_user_is_the_verified_claim_never_the_server_environment(team: Team) -> None:
    async with team.client("carol") as carol:
        listed = await call_ok(carol, "list_projects")
        made = await call_ok(carol, "create_project", {"project_id": "carol-proj"})
    assert listed["user"] == "carol"
    assert made["members"] == {"carol": "owner"}


async def test_another_users_session_cannot_be_borrowed(team: Team) -> None:
    opened = team.post(team.token("alice"))
    session = opened.headers["mcp-session-id"]
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    borrowed = httpx2.post(
        team.server.mcp_url,
        json=listing,
        headers={
            **HEADERS,
            "Authorization": f"Bearer {team.token('bob')}",
            "mcp-session-id": session,
            "mcp-protocol-version": "2025-06-18",
        },
        timeout=30,
    )
    assert borrowed.status_code == 404


async def test_two_users_are_isolated_end_to_end(team: Team) -> None:
    async with team.client("alice") as alice:
        await call_ok(alice, "create_project", {"project_id": "alice-web"})
        plan_id = await make_plan(alice, vpc_stack(), project_id="alice-web")
    async with team.client("bob") as bob:
        listed = await call_ok(bob, "list_projects")
        hidden = await call_error(bob, "get_project", {"project_id": "alice-web"})
        plan = await call_error(bob, "get_plan", {"plan_id": plan_id})
        approval = await call_error(bob, "approve_plan", {"plan_id": plan_id})
        execution = await call_error(bob, "execute_plan", {"plan_id": plan_id})
        with pytest.raises(MCPError) as read:
            await bob.read_resource("infra://projects/alice-web/plans/" + plan_id)
    assert "alice-web" not in [p["project_id"] for p in listed["projects"]]
    assert hidden["code"] == "RESOURCE_001"
    assert plan["code"] == "RESOURCE_001"
    assert approval["code"] == "RESOURCE_001"
    assert execution["code"] == "RESOURCE_001"
    assert json.loads(read.value.error.message)["code"] == "RESOURCE_001"


async def test_approver_is_not_author_on_verified_identities(team: Team) -> None:
    async with team.client("alice") as alice:
        await call_ok(alice, "create_project", {"project_id": "shared"})
        await call_ok(
            alice,
            "update_project",
            {
                "project_id": "shared",
                "settings": {"approval": {"allow_self_approval": False}},
                "members": [{"user": "alice", "role": "owner"}, {"user": "bob", "role": "approver"}],
            },
        )
        plan_id = await make_plan(alice, vpc_stack(), project_id="shared")
        refused = await call_error(alice, "approve_plan", {"plan_id": plan_id})
        still = await call_ok(alice, "get_plan", {"plan_id": plan_id})
    bob_human = Human(comment="looks right")
    async with team.client("bob", bob_human) as bob:
        approved = await call_ok(bob, "approve_plan", {"plan_id": plan_id})
    async with team.client("alice") as alice:
        executed = await call_ok(alice, "execute_plan", {"plan_id": plan_id})
    assert refused["code"] == "APPROVAL_002"
    assert refused["details"]["reason"] == "self_approval_forbidden"
    assert still["status"] == "pending"
    assert len(bob_human.prompts) == 1
    assert plan_id in bob_human.prompts[0].message
    assert approved["approved_by"] == "bob"
    assert approved["method"] == "elicitation"
    assert executed["status"] == "executed"


class ListChanged:
    """Counts resources list-changed signals reaching one client, on either protocol era."""

    def __init__(self) -> None:
        self.count = 0
        self.changed = anyio.Event()

    def signal(self) -> None:
        self.count += 1
        self.changed.set()

    async def on_message(self, message: Any) -> None:  # 2025 revisions: a notification on the session
        if isinstance(message, ResourceListChangedNotification):
            self.signal()

    async def wait(self) -> None:
        with anyio.fail_after(10):
            await self.changed.wait()
        self.changed = anyio.Event()


@asynccontextmanager
async def listening(client: Client, watch: ListChanged) -> AsyncIterator[None]:
    """On 2026-07-28, change notifications come through a subscriptions/listen stream."""
    if client.session.protocol_version < "2026":
        yield
        return
    async with client.listen(resources_list_changed=True) as subscription, anyio.create_task_group() as tasks:

        async def pump() -> None:
            async for _ in subscription:
                watch.signal()

        tasks.start_soon(pump)
        yield
        tasks.cancel_scope.cancel()


@pytest.mark.parametrize("mode", ["legacy", "auto"], ids=["2025-11-25", "2026-07-28"])
async def test_pending_plans_are_a_resource_each_user_reads_as_themselves_with_list_changed(
    team: Team, mode: str
) -> None:
    project = f"reviewed-{mode}"
    watch = ListChanged()
    async with team.client("dave", mode=mode) as dave:
        await call_ok(dave, "create_project", {"project_id": project})
        await call_ok(
            dave,
            "update_project",
            {
                "project_id": project,
                "settings": {"approval": {"allow_self_approval": False}},
                "members": [{"user": "dave", "role": "owner"}, {"user": "erin", "role": "approver"}],
            },
        )
        async with (
            team.client("erin", message_handler=watch.on_message, mode=mode, cache=None) as erin,
            team.client("frank", mode=mode) as frank,
            listening(erin, watch),
        ):
            before = await read_json(erin, PENDING)
            await call_ok(frank, "list_projects")  # a non-member with an open session
            plan_id = await make_plan(dave, vpc_stack(), project_id=project)
            await watch.wait()
            for_erin = await read_json(erin, PENDING)
            for_dave = await read_json(dave, PENDING)
            for_frank = await read_json(frank, PENDING)
            await call_ok(erin, "approve_plan", {"plan_id": plan_id})
            await watch.wait()
            after = await read_json(erin, PENDING)
    mine = [p for p in before["plans"] if p["project_id"] == project]
    assert mine == []
    assert [
        (p["plan_id"], p["you_may_approve"], p["author"]) for p in for_erin["plans"] if p["project_id"] == project
    ] == [(plan_id, True, "dave")]
    assert [(p["plan_id"], p["you_may_approve"]) for p in for_dave["plans"] if p["project_id"] == project] == [
        (plan_id, False)
    ]
    assert for_frank == {"user": "frank", "plans": []}
    assert [p for p in after["plans"] if p["project_id"] == project] == []


@pytest.mark.parametrize("mode", ["legacy", "auto"], ids=["2025-11-25", "2026-07-28"])
async def test_an_approver_approves_through_their_own_prompt_on_either_protocol_era(team: Team, mode: str) -> None:
    project = f"era-{mode}"
    async with team.client("alice", mode=mode) as alice:
        await call_ok(alice, "create_project", {"project_id": project})
        await call_ok(
            alice,
            "update_project",
            {
                "project_id": project,
                "settings": {"approval": {"allow_self_approval": False}},
                "members": [{"user": "alice", "role": "owner"}, {"user": "bob", "role": "approver"}],
            },
        )
        plan_id = await make_plan(alice, vpc_stack(), project_id=project)
        alice_human = Human()
    async with team.client("alice", alice_human, mode=mode) as alice:
        refused = await call_error(alice, "approve_plan", {"plan_id": plan_id})
    bob_human = Human()
    async with team.client("bob", bob_human, mode=mode) as bob:
        approved = await call_ok(bob, "approve_plan", {"plan_id": plan_id})
    assert refused["code"] == "APPROVAL_002"
    assert alice_human.prompts == []  # refused before anyone is asked
    assert len(bob_human.prompts) == 1
    assert approved["approved_by"] == "bob"


def remote_env(team: Team, user: str) -> dict[str, str]:
    return {"INFRA_MCP_SERVER_URL": team.server.mcp_url, "INFRA_MCP_TOKEN": team.token(user)}


async def test_the_terminal_cli_talks_to_the_team_server_with_the_persons_token(team: Team, tmp_path: Path) -> None:
    async with team.client("alice") as alice:
        await call_ok(alice, "create_project", {"project_id": "cli-web"})
        await call_ok(
            alice,
            "update_project",
            {
                "project_id": "cli-web",
                "settings": {"approval": {"allow_self_approval": False}},
                "members": [{"user": "alice", "role": "owner"}, {"user": "bob", "role": "approver"}],
            },
        )
        plan_id = await make_plan(alice, vpc_stack(), project_id="cli-web")
        second = await make_plan(alice, vpc_stack(prefix="other", cidr="10.1.0.0/16"), project_id="cli-web")
    nowhere = tmp_path / "no-database-here"
    listed = plans_without_terminal(nowhere, "list", "cli-web", **remote_env(team, "bob"))
    pending = plans_without_terminal(nowhere, "pending", **remote_env(team, "bob"))
    shown = plans_without_terminal(nowhere, "show", plan_id, **remote_env(team, "bob"))
    outsider = plans_without_terminal(nowhere, "list", "cli-web", **remote_env(team, "mallory"))
    by_author = plans_at_terminal(nowhere, "approve", plan_id, **remote_env(team, "alice"))
    wrong_code = plans_at_terminal(nowhere, "approve", plan_id, answer=lambda _: "AAA-AAA", **remote_env(team, "bob"))
    approved = plans_at_terminal(nowhere, "approve", plan_id, **remote_env(team, "bob"))
    without_tty = plans_without_terminal(nowhere, "approve", second, **remote_env(team, "bob"))
    rejected = plans_without_terminal(nowhere, "reject", second, "--reason", "not now", **remote_env(team, "bob"))
    async with team.client("alice") as alice:
        first_now = await call_ok(alice, "get_plan", {"plan_id": plan_id})
        second_now = await call_ok(alice, "get_plan", {"plan_id": second})
        log = await read_json(alice, "infra://projects/cli-web/audit")
    assert listed.returncode == 0, listed.stderr
    assert plan_id in listed.stdout
    assert pending.returncode == 0, pending.stderr
    assert plan_id in pending.stdout
    assert "as bob" in pending.stdout
    assert shown.returncode == 0, shown.stderr
    assert "cli-vpc" not in shown.stdout  # vpc_stack's default prefix is "net"
    assert "net-vpc" in shown.stdout
    assert outsider.returncode == 1
    assert "RESOURCE_001" in outsider.stderr
    assert by_author[0] == 1
    assert "APPROVAL_002" in by_author[1]
    assert wrong_code[0] == 1
    assert "Not approved" in wrong_code[1]
    assert approved[0] == 0, approved[1]
    assert "Approved" in approved[1]
    assert "as bob" in approved[1]
    assert without_tty.returncode == 2
    assert "no interactive terminal" in without_tty.stderr
    assert rejected.returncode == 0, rejected.stderr
    assert first_now["status"] == "approved"
    assert second_now["status"] == "rejected"
    approvals = [e for e in log["events"] if e["action"] == "plan.approve" and e["outcome"] == "ok"]
    assert [e["actor"] for e in approvals] == ["bob"]
    assert not nowhere.exists()  # no database was opened or created


def test_the_terminal_cli_without_a_token_says_how_to_give_one(team: Team, tmp_path: Path) -> None:
    done = plans_without_terminal(tmp_path / "none", "list", "web", INFRA_MCP_SERVER_URL=team.server.mcp_url)
    assert done.returncode == 2
    assert "INFRA_MCP_TOKEN" in done.stderr


def test_the_terminal_cli_with_an_expired_token_is_refused(team: Team, tmp_path: Path) -> None:
    env = {"INFRA_MCP_SERVER_URL": team.server.mcp_url, "INFRA_MCP_TOKEN": team.token("bob", exp=1_000_000_000)}
    done = plans_without_terminal(tmp_path / "none", "list", "web", **env)
    assert done.returncode == 1
    assert "token" in done.stderr


def test_the_terminal_cli_never_sends_a_token_over_plain_http_to_another_host(tmp_path: Path) -> None:
    env = {"INFRA_MCP_SERVER_URL": "http://infra.example.com/mcp", "INFRA_MCP_TOKEN": "secret-token"}
    done = plans_without_terminal(tmp_path / "none", "list", "web", **env)
    assert done.returncode == 2
    assert "plain http" in done.stderr

"""Isolation through a real MCP client: no project reaches outside its place, forgets live resources or
adopts state and audit it did not write (issue 9, items 1, 2 and 4)."""

from __future__ import annotations

import socket
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from mcp import Client
from moto.server import ThreadedMotoServer

from infra_mcp.domain.state import StateFile, StateOwner, StateResource
from infra_mcp.server.app import build_server
from infra_mcp.settings import Settings
from infra_mcp.stores.sqlite import MIGRATIONS
from infra_mcp.stores.state_local import LocalStateStore
from infra_mcp.stores.state_scope import IncarnationScope
from tests.e2e.conftest import ClientFactory, call_error, call_ok, read_json
from tests.e2e.loop_helpers import Human, approve, make_plan, sandbox_world

BUCKET = {"name": "logs", "type": "AWS::S3::Bucket", "properties": {"BucketName": "logs-b"}}


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


async def _apply(client: Any, desired: dict[str, Any], project_id: str = "web") -> None:
    plan_id = await make_plan(client, desired, project_id)
    await approve(client, plan_id)
    assert (await call_ok(client, "execute_plan", {"plan_id": plan_id}))["status"] == "executed"


# ----------------------------------------------------------------------------- item 1: locations, local


async def test_pointing_a_project_at_a_foreign_folder_is_refused_and_delete_leaves_that_folder_alone(
    connect: ClientFactory, tmp_path: Path
) -> None:
    precious = tmp_path / "precious"
    (precious / "backups" / "history").mkdir(parents=True)
    (precious / "backups" / "payroll.db").write_bytes(b"do not delete")
    (precious / "backups" / "history" / "1.json").write_bytes(b"{}")
    before = _tree(precious)

    async with connect() as client:
        await call_ok(client, "create_project", {"project_id": "backups"})
        for location in (str(precious), f"{tmp_path}/data/state/../../precious", "/"):
            refused = await call_error(
                client, "update_project", {"project_id": "backups", "settings": {"state_location": location}}
            )
            assert refused["code"] == "VALIDATION_001"
        assert (await call_ok(client, "get_project", {"project_id": "backups"}))["settings"]["state_location"] is None
        await call_ok(client, "delete_project", {"project_id": "backups"})

    assert _tree(precious) == before


async def test_a_folder_the_operator_allows_is_usable_and_gets_private_modes(
    connect: ClientFactory, tmp_path: Path
) -> None:
    team = tmp_path / "team-state"
    async with connect(settings={"allowed_state_locations": [str(team)]}, elicitation_callback=Human()) as client:
        await call_ok(client, "create_project", {"project_id": "web"})
        await call_ok(
            client, "update_project", {"project_id": "web", "settings": {"state_location": str(team / "web")}}
        )
        await _apply(client, {"resources": [BUCKET]})

    files = [p for p in team.rglob("*") if p.is_file()]
    assert files
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {"0o600"}
    assert {oct(p.stat().st_mode & 0o777) for p in team.rglob("*") if p.is_dir()} | {
        oct(team.stat().st_mode & 0o777)
    } == {"0o700"}


# ----------------------------------------------------------------------------- item 1: locations, S3


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _bucket(endpoint: str, objects: dict[str, bytes]) -> tuple[Any, str]:
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint)
    name = f"b-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    for key, data in objects.items():
        s3.put_object(Bucket=name, Key=key, Body=data)
    return s3, name


def _objects(s3: Any, bucket: str) -> dict[str, bytes]:
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in sorted(keys)}


async def test_pointing_a_project_at_a_foreign_bucket_is_refused_and_delete_leaves_the_bucket_alone(
    connect: ClientFactory, s3_endpoint: str
) -> None:
    s3, audit_logs = _bucket(s3_endpoint, {"backups/2026-11-30.log": b"audit", "backups/history/1.json": b"{}"})
    _, team = _bucket(s3_endpoint, {})
    settings = {"s3_endpoint_url": s3_endpoint, "allowed_state_locations": [f"s3://{team}/infra"]}

    async with connect(settings=settings) as client:
        await call_ok(client, "create_project", {"project_id": "backups"})
        for location in (f"s3://{audit_logs}", f"s3://{team}", f"s3://{team}/infra-evil", f"s3://{team}/infra/../x"):
            refused = await call_error(
                client, "update_project", {"project_id": "backups", "settings": {"state_location": location}}
            )
            assert refused["code"] == "VALIDATION_001", location
        await call_ok(client, "delete_project", {"project_id": "backups"})

    assert _objects(s3, audit_logs) == {"backups/2026-11-30.log": b"audit", "backups/history/1.json": b"{}"}


async def test_deleting_a_project_in_an_allowed_bucket_deletes_only_the_keys_it_wrote(
    connect: ClientFactory, s3_endpoint: str
) -> None:
    foreign = {"infra/web/keep.log": b"not ours", "infra/web/history/notes.txt": b"not ours either"}
    s3, team = _bucket(s3_endpoint, foreign)
    settings = {"s3_endpoint_url": s3_endpoint, "allowed_state_locations": [f"s3://{team}/infra"]}

    async with connect(settings=settings, elicitation_callback=Human()) as client:
        await call_ok(client, "create_project", {"project_id": "web"})
        await call_ok(
            client, "update_project", {"project_id": "web", "settings": {"state_location": f"s3://{team}/infra"}}
        )
        await _apply(client, {"resources": [BUCKET]})
        await _apply(client, {"resources": []})
        assert len(_objects(s3, team)) > len(foreign)

        deleted = await call_ok(client, "delete_project", {"project_id": "web"})

    assert _objects(s3, team) == foreign
    assert set(deleted["left_alone"]) == {"web/history/notes.txt"}
    assert deleted["deleted_keys"] >= 3


# ----------------------------------------------------------------------------- item 2: nothing forgotten


async def test_restoring_an_empty_version_is_refused_without_forget_and_the_bucket_stays_managed(
    connect: ClientFactory, data_dir: Path
) -> None:
    async with connect(elicitation_callback=Human()) as client:
        await call_ok(client, "create_project", {"project_id": "web"})
        await _apply(client, {"resources": [BUCKET]})
        await _apply(client, {"resources": []})
        empty = (await call_ok(client, "get_state_history", {"project_id": "web"}))["current_serial"]
        await _apply(client, {"resources": [BUCKET]})

        refused = await call_error(client, "restore_state", {"project_id": "web", "version": empty})
        assert refused["code"] == "CONFLICT_001"
        assert [r["name"] for r in refused["details"]["resources"]] == ["logs"]
        assert (await call_ok(client, "list_resources", {"project_id": "web"}))["count"] == 1
        assert (await call_error(client, "delete_project", {"project_id": "web"}))["code"] == "CONFLICT_001"

        forgot = await call_ok(
            client, "restore_state", {"project_id": "web", "version": empty, "forget_resources": True}
        )
        assert [r["name"] for r in forgot["forgotten_resources"]] == ["logs"]
        log = (await read_json(client, "infra://projects/web/audit"))["events"]
        restore = next(e for e in log if e["action"] == "state.restore")
        assert [r["name"] for r in restore["details"]["forgotten_resources"]] == ["logs"]
    assert [kind for kind, _ in sandbox_world(data_dir)] == ["AWS::S3::Bucket"]  # forgetting never touches AWS


async def test_delete_is_refused_after_a_restore_that_dropped_live_resources_without_forget(
    connect: ClientFactory, data_dir: Path
) -> None:
    async with connect(elicitation_callback=Human()) as client:
        await call_ok(client, "create_project", {"project_id": "web"})
        await _apply(client, {"resources": [BUCKET]})
        # What restore_state did before it asked for forget_resources: a version without the bucket, no plan.
        incarnation = (await read_json(client, "infra://projects/web"))["incarnation"]
        store = IncarnationScope(
            LocalStateStore(data_dir / "state"), StateOwner(project_id="web", incarnation=incarnation)
        )
        current = await store.read("web")
        assert current is not None
        await store.write(current.next_version([], user="alice", description="Restored state version 0"))

        refused = await call_error(client, "delete_project", {"project_id": "web"})

        assert refused["code"] == "CONFLICT_001"
        assert refused["details"]["resources"] == ["logs"]
        assert [p["project_id"] for p in (await call_ok(client, "list_projects"))["projects"]] == ["web"]
    assert (data_dir / "state" / "web" / "state.json").is_file()


# ----------------------------------------------------------------------------- item 4: incarnations


async def test_a_recreated_project_does_not_adopt_the_state_the_previous_one_left(
    connect: ClientFactory, data_dir: Path, tmp_path: Path
) -> None:
    shared = tmp_path / "shared-state"  # one state location, two databases
    async with connect("alice", elicitation_callback=Human(), settings={"state_location": str(shared)}) as alice:
        await call_ok(alice, "create_project", {"project_id": "prod"})
        await _apply(alice, {"resources": [BUCKET]}, "prod")

    # The same data dir with its database lost does not even start (the database integrity check);
    # a fresh data dir (another database) over the same state location is what incarnations guard.
    other = build_server(Settings(data_dir=tmp_path / "other", user="mallory", state_location=str(shared)))
    async with Client(other) as mallory:
        refused = await call_error(mallory, "create_project", {"project_id": "prod"})
        assert refused["code"] == "CONFLICT_001"
        assert refused["details"]["found"]["resource_count"] == 1
        assert refused["details"]["found"]["serial"] >= 1
        assert (await call_ok(mallory, "list_projects"))["projects"] == []


async def test_a_recreated_project_does_not_see_the_previous_owners_audit(connect: ClientFactory) -> None:
    async with connect("alice") as alice:
        await call_ok(alice, "create_project", {"project_id": "web"})
        await call_ok(alice, "update_project", {"project_id": "web", "description": "alice's secret plans"})
        await call_ok(alice, "delete_project", {"project_id": "web"})
    async with connect("mallory") as mallory:
        await call_ok(mallory, "create_project", {"project_id": "web"})
        log = (await read_json(mallory, "infra://projects/web/audit"))["events"]

    assert [(e["actor"], e["action"]) for e in log] == [("mallory", "project.create")]
    assert "secret" not in str(log)


def test_the_moto_port_is_loopback_only(s3_endpoint: str) -> None:
    host = s3_endpoint.split("//")[1].split(":")[0]
    assert socket.gethostbyname(host) == "127.0.0.1"


async def test_creating_a_project_over_damaged_state_files_is_refused_not_adopted(
    connect: ClientFactory, tmp_path: Path
) -> None:
    shared = tmp_path / "shared-state"
    (shared / "prod").mkdir(parents=True)
    (shared / "prod" / "state.json").write_bytes(b'{"truncated')

    async with connect(settings={"state_location": str(shared)}) as client:
        assert (await call_error(client, "create_project", {"project_id": "prod"}))["code"] == "CONFLICT_001"
        assert (await call_ok(client, "list_projects"))["projects"] == []
    assert (shared / "prod" / "state.json").read_bytes() == b'{"truncated'


async def test_a_project_from_before_incarnations_keeps_its_state_after_the_upgrade(
    connect: ClientFactory, data_dir: Path
) -> None:
    data_dir.mkdir(parents=True)
    doc = (
        '{"id": "web", "name": "web", "owner": "alice", "members": [{"user": "alice", "role": "owner"}], '
        '"created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}'
    )
    with sqlite3.connect(data_dir / "infra-mcp.sqlite3") as db:  # written by an infra-mcp without incarnations
        db.executescript(MIGRATIONS[0] + "PRAGMA user_version = 1;")
        db.execute("INSERT INTO projects VALUES ('web', ?, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')", (doc,))
        db.execute("INSERT INTO members VALUES ('web', 'alice', 'owner')")
    old = StateFile.empty("web").next_version(
        [StateResource(id="logs-1", name="logs", type="AWS::S3::Bucket")], user="alice", description="old"
    )
    await LocalStateStore(data_dir / "state").write(old)  # no incarnation in it

    async with connect() as client:
        assert (await call_ok(client, "list_resources", {"project_id": "web"}))["count"] == 1
        assert (await call_error(client, "delete_project", {"project_id": "web"}))["code"] == "CONFLICT_001"

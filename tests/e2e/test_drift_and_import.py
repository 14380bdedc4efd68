"""Drift and import end to end: a real MCP client, the sandbox over stdio, and changes made behind
infra-mcp's back with plain boto3 against ``infra-mcp sandbox --http`` on the same data directory."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from mcp import Client

from infra_mcp.sandbox.cloud import SandboxCloud
from infra_mcp.sandbox.world import FileWorldStore
from tests.e2e.conftest import ClientFactory, call_error, call_ok, read_json
from tests.e2e.loop_helpers import Human, approve, audit, events, make_project
from tests.real_upstream import sandbox_http

BUCKET = "AWS::S3::Bucket"
VPC = "AWS::EC2::VPC"


@pytest.fixture
def aws(data_dir: Path) -> Iterator[Any]:
    """A boto3 Cloud Control client on the same simulated cloud the server's sandbox uses."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with sandbox_http(data_dir) as endpoint:
        yield boto3.client(
            "cloudcontrol",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="someone",
            aws_secret_access_key="else",
        )


def settle(client: Any, answer: dict[str, Any]) -> dict[str, Any]:
    event: dict[str, Any] = answer["ProgressEvent"]
    for _ in range(500):
        if event["OperationStatus"] in ("SUCCESS", "FAILED"):
            assert event["OperationStatus"] == "SUCCESS", event
            return event
        time.sleep(0.02)
        event = client.get_resource_request_status(RequestToken=event["RequestToken"])["ProgressEvent"]
    raise AssertionError("the out-of-band request never finished")


def live(client: Any, type_name: str, identifier: str) -> dict[str, Any]:
    found = client.get_resource(TypeName=type_name, Identifier=identifier)["ResourceDescription"]
    return dict(json.loads(found["Properties"]))


def bucket(name: str, status: str = "Enabled", **tags: str) -> dict[str, Any]:
    return {
        "name": name,
        "type": BUCKET,
        "properties": {"BucketName": name, "VersioningConfiguration": {"Status": status}},
        "tags": tags or {"env": "dev"},
    }


async def apply(client: Client, view: dict[str, Any]) -> dict[str, Any]:
    assert view["status"] == "pending", view
    await approve(client, view["plan_id"])
    done = await call_ok(client, "execute_plan", {"plan_id": view["plan_id"]})
    assert done["status"] == "executed", done
    return done


async def detect(client: Client, project_id: str = "web", **args: Any) -> dict[str, Any]:
    return await call_ok(client, "detect_drift", {"project_id": project_id, **args})


async def test_a_change_made_outside_is_detected_reverted_by_a_plan_detected_again_and_accepted(
    connect: ClientFactory, aws: Any
) -> None:
    desired = {"resources": [bucket("drift-b1")]}
    progress: list[float] = []

    async def heard(value: float, _total: float | None, _message: str | None) -> None:
        progress.append(value)

    async with connect("alice", elicitation_callback=Human()) as alice:
        await make_project(alice)
        await apply(alice, await call_ok(alice, "plan_changes", {"project_id": "web", "desired_state": desired}))
        assert (await detect(alice))["in_sync"] == 1

        patch = [{"op": "replace", "path": "/VersioningConfiguration/Status", "value": "Suspended"}]
        settle(aws, aws.update_resource(TypeName=BUCKET, Identifier="drift-b1", PatchDocument=json.dumps(patch)))

        found = await call_ok(alice, "detect_drift", {"project_id": "web"}, progress_callback=heard)
        assert (found["modified"], found["in_sync"]) == (1, 0)
        assert found["lines"] == [
            'modified drift-b1 (AWS::S3::Bucket): /VersioningConfiguration/Status "Enabled" -> "Suspended"'
        ]
        assert progress[-1] == 1
        assert progress == sorted(progress)
        listed = await call_ok(alice, "list_resources", {"project_id": "web"})
        assert [r["drift"] for r in listed["resources"]] == ["modified"]
        assert listed["drift_checked_at"]
        one = await call_ok(alice, "get_resource", {"project_id": "web", "resource": "drift-b1"})
        assert one["drift"].startswith("modified")
        report = await read_json(alice, found["drift_uri"])
        assert report["resources"][0]["differences"] == [
            {"path": "/VersioningConfiguration/Status", "expected": "Enabled", "actual": "Suspended"}
        ]

        # Revert: the same desired state, planned against what is live.
        assert (await call_ok(alice, "plan_changes", {"project_id": "web", "desired_state": desired}))[
            "summary"
        ].startswith("No changes")
        revert = await call_ok(alice, "plan_changes", {"project_id": "web", "desired_state": desired, "refresh": True})
        assert revert["changes"] == ["update drift-b1 (AWS::S3::Bucket) [low]"]
        diff = (await alice.read_resource(revert["diff_uri"])).contents[0].text  # type: ignore[union-attr]
        assert '"Suspended" -> "Enabled"' in diff
        await apply(alice, revert)
        assert live(aws, BUCKET, "drift-b1")["VersioningConfiguration"] == {"Status": "Enabled"}
        assert (await detect(alice))["in_sync"] == 1
        listed = await call_ok(alice, "list_resources", {"project_id": "web"})
        assert [r["drift"] for r in listed["resources"]] == ["in_sync"]

        # Changed again, this time accepted: the record takes the live values, AWS is not touched.
        settle(aws, aws.update_resource(TypeName=BUCKET, Identifier="drift-b1", PatchDocument=json.dumps(patch)))
        tagged = [{"op": "replace", "path": "/Tags", "value": [{"Key": "env", "Value": "prod"}]}]
        settle(aws, aws.update_resource(TypeName=BUCKET, Identifier="drift-b1", PatchDocument=json.dumps(tagged)))
        assert (await detect(alice))["modified"] == 1
        before = live(aws, BUCKET, "drift-b1")
        serial = (await call_ok(alice, "list_resources", {"project_id": "web"}))["serial"]

        accept = await call_ok(alice, "accept_drift", {"project_id": "web", "names": ["drift-b1"]})
        assert accept["summary"].startswith("Accept drift: 1 to record as live")
        done = await apply(alice, accept)
        assert done["changes"] == ["recorded drift-b1 (AWS::S3::Bucket) as it is live"]
        assert live(aws, BUCKET, "drift-b1") == before
        state = await read_json(alice, "infra://projects/web/state")
        assert state["serial"] == serial + 1
        (record,) = state["resources"]
        assert record["declared"]["VersioningConfiguration"] == {"Status": "Suspended"}
        assert record["tags"] == {"env": "prod"}
        assert "ok" in {e["outcome"] for e in events(await audit(alice), "plan.execute", accept["plan_id"])}
        assert (await detect(alice))["in_sync"] == 1


async def test_a_resource_deleted_outside_is_reported_recreated_by_a_refreshed_plan_or_dropped_by_accepting(
    connect: ClientFactory, aws: Any
) -> None:
    both = {"resources": [bucket("gone-b1"), bucket("gone-b2")]}
    human = Human()
    async with connect("alice", elicitation_callback=human) as alice:
        await make_project(alice)
        await apply(alice, await call_ok(alice, "plan_changes", {"project_id": "web", "desired_state": both}))
        for name in ("gone-b1", "gone-b2"):
            settle(aws, aws.delete_resource(TypeName=BUCKET, Identifier=name))

        found = await detect(alice)
        assert found["deleted"] == 2
        assert "deleted gone-b1 (AWS::S3::Bucket) gone-b1: gone from AWS" in found["lines"]

        dropped = await call_ok(alice, "accept_drift", {"project_id": "web", "names": ["gone-b2"]})
        assert "1 to drop from state" in dropped["summary"]
        assert dropped["changes"] == ["accept drift (delete record) gone-b2 (AWS::S3::Bucket) [low]"]
        await apply(alice, dropped)
        asked = human.prompts[-1].message
        assert "Drift accepted, nothing sent to AWS (1)" in asked
        assert "gone-b2 (AWS::S3::Bucket): deleted outside infra-mcp, dropped from state" in asked
        assert "Destroyed or replaced" not in asked
        assert "to the project's record; nothing is sent to AWS." in asked
        names = [r["name"] for r in (await read_json(alice, "infra://projects/web/state"))["resources"]]
        assert names == ["gone-b1"]

        only = {"resources": [bucket("gone-b1")]}
        recreate = await call_ok(alice, "plan_changes", {"project_id": "web", "desired_state": only, "refresh": True})
        assert recreate["changes"][0].startswith("create gone-b1 (AWS::S3::Bucket)")
        diff = (await alice.read_resource(recreate["diff_uri"])).contents[0].text  # type: ignore[union-attr]
        assert "deleted outside infra-mcp" in diff
        await apply(alice, recreate)
        assert live(aws, BUCKET, "gone-b1")["BucketName"] == "gone-b1"
        state = await read_json(alice, "infra://projects/web/state")
        assert [(r["name"], r["id"]) for r in state["resources"]] == [("gone-b1", "gone-b1")]
        assert (await detect(alice))["in_sync"] == 1


async def test_an_unmanaged_bucket_and_vpc_are_discovered_imported_through_approval_and_then_show_no_changes(
    connect: ClientFactory, aws: Any
) -> None:
    settle(
        aws,
        aws.create_resource(
            TypeName=BUCKET,
            DesiredState=json.dumps({"BucketName": "found-b", "Tags": [{"Key": "team", "Value": "data"}]}),
        ),
    )
    vpc_id = settle(aws, aws.create_resource(TypeName=VPC, DesiredState=json.dumps({"CidrBlock": "10.7.0.0/16"})))[
        "Identifier"
    ]
    human = Human()
    async with connect("alice", elicitation_callback=human) as alice:
        await make_project(alice)
        seen = await call_ok(alice, "discover_resources", {"project_id": "web", "types": ["S3::Bucket", VPC]})
        assert {(r["type"], r["identifier"], r["managed_by"]) for r in seen["resources"]} == {
            (BUCKET, "found-b", ""),
            (VPC, vpc_id, ""),
        }
        assert (seen["unmanaged"], seen["managed"], seen["truncated"]) == (2, 0, False)

        wanted = [
            {"name": "data", "type": BUCKET, "identifier": "found-b"},
            {"name": "net", "type": VPC, "identifier": vpc_id},
        ]
        planned = await call_ok(alice, "import_resources", {"project_id": "web", "resources": wanted})
        assert planned["summary"] == "Plan: 2 to import, 0 to add, 0 to change, 0 to replace, 0 to destroy."
        assert planned["changes"] == ["import data (AWS::S3::Bucket) [low]", "import net (AWS::EC2::VPC) [low]"]
        diff = (await alice.read_resource(planned["diff_uri"])).contents[0].text  # type: ignore[union-attr]
        assert '<= import resource "AWS::S3::Bucket" "data"' in diff
        before = {(BUCKET, "found-b"): live(aws, BUCKET, "found-b"), (VPC, vpc_id): live(aws, VPC, vpc_id)}
        assert (await call_ok(alice, "list_resources", {"project_id": "web"}))["count"] == 0  # nothing yet

        await apply(alice, planned)
        assert len(human.prompts) == 1  # approved by the person, like any plan
        assert {(BUCKET, "found-b"): live(aws, BUCKET, "found-b"), (VPC, vpc_id): live(aws, VPC, vpc_id)} == before
        state = await read_json(alice, "infra://projects/web/state")
        records = {r["name"]: r for r in state["resources"]}
        assert (records["data"]["id"], records["net"]["id"]) == ("found-b", vpc_id)
        assert records["data"]["tags"] == {"team": "data"}
        assert "VpcId" not in records["net"]["declared"]  # read-only: never declared

        desired = {
            "resources": [
                {"name": r["name"], "type": r["type"], "properties": r["declared"], "tags": r["tags"]}
                for r in state["resources"]
            ]
        }
        again = await call_ok(alice, "plan_changes", {"project_id": "web", "desired_state": desired})
        assert again["summary"].startswith("No changes"), again
        assert (await detect(alice))["in_sync"] == 2
        managed = await call_ok(alice, "discover_resources", {"project_id": "web", "types": [BUCKET]})
        assert [r["managed_by"] for r in managed["resources"]] == ["web"]


async def test_a_resource_one_project_manages_cannot_be_imported_by_another_and_is_named_only_to_its_members(
    connect: ClientFactory, aws: Any
) -> None:
    settle(aws, aws.create_resource(TypeName=BUCKET, DesiredState=json.dumps({"BucketName": "shared-b"})))
    wanted = [{"name": "b", "type": BUCKET, "identifier": "shared-b"}]
    async with connect("alice", elicitation_callback=Human()) as alice:
        await make_project(alice)
        await apply(alice, await call_ok(alice, "import_resources", {"project_id": "web", "resources": wanted}))
        again = await call_error(
            alice, "import_resources", {"project_id": "web", "resources": [{**wanted[0], "name": "c"}]}
        )
        assert again["code"] == "CONFLICT_001"
        assert again["details"]["resource"] == "b"
        await make_project(alice, "web2")
        refused = await call_error(alice, "import_resources", {"project_id": "web2", "resources": wanted})
        assert refused["code"] == "CONFLICT_001"
        assert refused["details"]["managed_by"] == "web"

    async with connect("bob") as bob:
        await make_project(bob, "bobs")
        refused = await call_error(bob, "import_resources", {"project_id": "bobs", "resources": wanted})
        assert refused["code"] == "CONFLICT_001"
        assert refused["details"]["managed_by"] is None
        assert "web" not in refused["message"].replace("web2", "")
        seen = await call_ok(bob, "discover_resources", {"project_id": "bobs", "types": [BUCKET]})
        assert [(r["identifier"], r["managed_by"]) for r in seen["resources"]] == [("shared-b", "another project")]
        assert "web" not in json.dumps(seen)


async def test_imports_are_refused_for_a_missing_identifier_and_a_type_cloud_control_cannot_read(
    connect: ClientFactory, aws: Any
) -> None:
    async with connect("alice") as alice:
        await make_project(alice)
        missing = [{"name": "b", "type": BUCKET, "identifier": "no-such-bucket"}]
        assert (await call_error(alice, "import_resources", {"project_id": "web", "resources": missing}))[
            "code"
        ] == "RESOURCE_001"
        legacy = [{"name": "p", "type": "AWS::CodeBuild::Project", "identifier": "p"}]
        refused = await call_error(alice, "import_resources", {"project_id": "web", "resources": legacy})
        assert refused["code"] == "VALIDATION_001"
        assert "Cloud Control cannot read" in refused["message"]
        unlistable = await call_error(
            alice, "discover_resources", {"project_id": "web", "types": ["AWS::CodeBuild::Project"]}
        )
        assert unlistable["code"] == "VALIDATION_001"
        assert (await read_json(alice, "infra://projects/web/state"))["resources"] == []


async def test_a_viewer_may_detect_drift_but_not_discover_import_or_accept(connect: ClientFactory, aws: Any) -> None:
    async with connect("alice", elicitation_callback=Human()) as alice:
        await make_project(alice)
        await apply(
            alice,
            await call_ok(
                alice, "plan_changes", {"project_id": "web", "desired_state": {"resources": [bucket("v-b")]}}
            ),
        )
        members = [{"user": "alice", "role": "owner"}, {"user": "val", "role": "viewer"}]
        await call_ok(alice, "update_project", {"project_id": "web", "members": members})
    async with connect("val") as val:
        assert (await detect(val))["in_sync"] == 1
        for tool, args in [
            ("accept_drift", {"names": ["v-b"]}),
            ("discover_resources", {"types": [BUCKET]}),
            ("import_resources", {"resources": [{"name": "x", "type": BUCKET, "identifier": "v-b"}]}),
            ("plan_changes", {"desired_state": {"resources": []}, "refresh": True}),
        ]:
            assert (await call_error(val, tool, {"project_id": "web", **args}))["code"] == "AUTH_001", tool


async def test_discovery_follows_list_resources_pages_to_the_end(connect: ClientFactory, data_dir: Path) -> None:
    world = SandboxCloud(FileWorldStore(data_dir / "sandbox" / "cloud.json"))
    for i in range(120):  # the sandbox answers 50 per page, as Cloud Control pages
        world.call("CreateResource", {"TypeName": BUCKET, "DesiredState": json.dumps({"BucketName": f"many-{i:03d}"})})
    world.call("ListResources", {"TypeName": BUCKET})
    async with connect("alice") as alice:
        await make_project(alice)
        seen = await call_ok(alice, "discover_resources", {"project_id": "web", "types": [BUCKET]})
    assert sorted(r["identifier"] for r in seen["resources"]) == [f"many-{i:03d}" for i in range(120)]
    assert (seen["unmanaged"], seen["truncated"]) == (120, False)

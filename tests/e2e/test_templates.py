"""plan_template end to end: realistic templates planned, approved by a person, executed in the sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ClientFactory, call_error, call_ok, read_json
from tests.e2e.loop_helpers import Human, approve, make_project, plan_of, sandbox_world, state_resources

TEMPLATES = Path(__file__).parent / "templates"
CORPUS = sorted(p.stem for p in TEMPLATES.glob("*.yaml"))


async def _plan_template(client: Any, name: str, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    text = (TEMPLATES / f"{name}.yaml").read_text()
    return await call_ok(
        client, "plan_template", {"project_id": "web", "template": text, "parameters": parameters or {}}
    )


@pytest.mark.parametrize("name", CORPUS)
async def test_a_realistic_template_plans_without_false_findings_and_executes(
    connect: ClientFactory, data_dir: Path, name: str
) -> None:
    async with connect("alice", elicitation_callback=Human()) as client:
        await make_project(client)
        planned = await _plan_template(client, name)
        plan = await read_json(client, planned["plan_uri"])
        errors = [f for f in plan["findings"] if f["severity"] == "error"]
        assert errors == []
        linted = [f for f in plan["findings"] if f["rule"][:1] in ("E", "W") and f["rule"][1:].isdigit()]
        assert linted == []  # cfn-lint says nothing about these templates either
        assert plan["summary"]["create"] == len(plan["changes"])
        await approve(client, plan["id"])
        await call_ok(client, "execute_plan", {"plan_id": plan["id"]})
        outcomes = (await plan_of(client, plan["id"]))["execution"]["outcomes"]
        assert {o["status"] for o in outcomes} == {"succeeded"}, [o for o in outcomes if o["status"] != "succeeded"]
        listed = await call_ok(client, "list_resources", {"project_id": "web"})
        assert {r["status"] for r in listed["resources"]} == {"active"}
        assert await state_resources(client) == sandbox_world(data_dir)


async def test_the_networking_template_evaluates_parameters_conditions_and_pseudo_parameters(
    connect: ClientFactory,
) -> None:
    async with connect("alice", elicitation_callback=Human()) as client:
        await make_project(client)
        planned = await _plan_template(client, "networking", {"EnableNat": "false", "EnvironmentName": "prod"})
        plan = await read_json(client, planned["plan_uri"])
        names = {c["name"] for c in plan["changes"]}
        assert "NatGateway" not in names
        assert "DefaultPrivateRoute" not in names
        subnet = next(c for c in plan["changes"] if c["name"] == "PublicSubnet1")["desired"]["properties"]
        assert subnet["CidrBlock"] == "10.192.0.0/24"
        assert subnet["AvailabilityZone"] == "us-east-1a"
        sg = next(c for c in plan["changes"] if c["name"] == "NoIngressSecurityGroup")["desired"]["properties"]
        assert sg["GroupName"] == "web-no-ingress"
        outputs = {f["path"]: f["message"] for f in plan["findings"] if f["rule"] == "output"}
        assert outputs["/Outputs/Account"] == "Output Account = 000000000000"
        assert outputs["/Outputs/VPC"] == "Output VPC = (known after apply)"

        await approve(client, plan["id"])
        await call_ok(client, "execute_plan", {"plan_id": plan["id"]})
        vpc_id = (await call_ok(client, "get_resource", {"project_id": "web", "resource": "VPC"}))["id"]
        subnets = [
            (await call_ok(client, "get_resource", {"project_id": "web", "resource": name}))["id"]
            for name in ("PublicSubnet1", "PublicSubnet2")
        ]
        resolved = (await read_json(client, "infra://projects/web/outputs"))["outputs"]
        assert resolved == {"VPC": vpc_id, "PublicSubnets": ",".join(subnets), "Account": "000000000000"}
        state = await read_json(client, "infra://projects/web/state")
        assert state["outputs"] == resolved  # kept in the state the execution wrote


async def test_unsupported_constructs_are_refused_with_their_location(connect: ClientFactory) -> None:
    template = """
Transform: AWS::Serverless-2016-10-31
Resources:
  Stack:
    Type: AWS::CloudFormation::Stack
    Properties: {TemplateURL: https://example.com/t.yaml}
  Custom:
    Type: Custom::Thing
    Properties: {ServiceToken: arn:aws:lambda:us-east-1:1:function:x}
  Bucket:
    Type: AWS::S3::Bucket
    Properties:
      BucketName: !ImportValue shared-bucket-name
"""
    async with connect("alice") as client:
        await make_project(client)
        error = await call_error(client, "plan_template", {"project_id": "web", "template": template})
        assert error["code"] == "VALIDATION_001"
        paths = {f["path"] for f in error["details"]["findings"]}
        assert paths == {
            "/Transform",
            "/Resources/Stack/Type",
            "/Resources/Custom/Type",
            "/Resources/Bucket/Properties/BucketName",
        }


async def test_a_retained_resource_removed_from_the_template_is_left_in_place_and_dropped_from_state(
    connect: ClientFactory, data_dir: Path
) -> None:
    async with connect("alice", elicitation_callback=Human()) as client:
        await make_project(client)
        first = await read_json(client, (await _plan_template(client, "dynamodb"))["plan_uri"])
        await approve(client, first["id"])
        await call_ok(client, "execute_plan", {"plan_id": first["id"]})
        table_id = (await call_ok(client, "get_resource", {"project_id": "web", "resource": "OrdersTable"}))["id"]

        other = "Resources:\n  Queue: {Type: AWS::SQS::Queue}\n"
        planned = await call_ok(client, "plan_template", {"project_id": "web", "template": other})
        second = await read_json(client, planned["plan_uri"])
        removal = next(c for c in second["changes"] if c["name"] == "OrdersTable")
        assert removal["action"] == "delete"
        assert removal["retained"] is True
        assert removal["risk"] == "low"
        diff = (await client.read_resource(planned["diff_uri"])).contents[0].text  # type: ignore[union-attr]
        assert "left in place" in diff
        await approve(client, second["id"])
        executed = await call_ok(client, "execute_plan", {"plan_id": second["id"]})
        assert executed["status"] == "executed"

        assert {kind for kind, _ in await state_resources(client)} == {"AWS::SQS::Queue"}
        # A full plan states the whole desired state: one without Outputs clears those kept in state.
        assert (await read_json(client, "infra://projects/web/state"))["outputs"] == {}
        assert (await read_json(client, "infra://projects/web/outputs"))["outputs"] == {}
        assert ("AWS::DynamoDB::Table", table_id) in sandbox_world(data_dir)


async def test_a_replacement_under_update_replace_policy_retain_leaves_the_old_one_in_place(
    connect: ClientFactory, data_dir: Path
) -> None:
    template = "Resources:\n  Queue:\n    Type: AWS::SQS::Queue\n    UpdateReplacePolicy: Retain\n"
    template += "    Properties: {QueueName: %s}\n"
    async with connect("alice", elicitation_callback=Human()) as client:
        await make_project(client)
        planned = await call_ok(client, "plan_template", {"project_id": "web", "template": template % "orders-a"})
        await approve(client, planned["plan_id"])
        await call_ok(client, "execute_plan", {"plan_id": planned["plan_id"]})
        old_id = (await call_ok(client, "get_resource", {"project_id": "web", "resource": "Queue"}))["id"]

        planned = await call_ok(client, "plan_template", {"project_id": "web", "template": template % "orders-b"})
        plan = await read_json(client, planned["plan_uri"])
        [change] = plan["changes"]
        assert change["action"] == "replace"
        assert change["retained"] is True
        diff = (await client.read_resource(planned["diff_uri"])).contents[0].text  # type: ignore[union-attr]
        assert "UpdateReplacePolicy Retain" in diff
        await approve(client, plan["id"])
        executed = await call_ok(client, "execute_plan", {"plan_id": plan["id"]})
        assert executed["status"] == "executed"

        new_id = (await call_ok(client, "get_resource", {"project_id": "web", "resource": "Queue"}))["id"]
        assert new_id != old_id
        assert {rid for _, rid in await state_resources(client)} == {new_id}
        assert ("AWS::SQS::Queue", old_id) in sandbox_world(data_dir)


async def test_the_eks_template_orders_the_node_group_after_its_cluster_and_roles_and_keeps_its_outputs(
    connect: ClientFactory,
) -> None:
    async with connect("alice", elicitation_callback=Human()) as client:
        await make_project(client)
        plan = await read_json(client, (await _plan_template(client, "eks"))["plan_uri"])
        order = {name: step for step, names in enumerate(plan["execution_order"]) for name in names}
        assert order["NodeGroup"] > max(order["Cluster"], order["NodeRole"])
        assert order["Cluster"] > max(order["ClusterRole"], order["SubnetA"], order["ControlPlaneSecurityGroup"])
        await approve(client, plan["id"])
        await call_ok(client, "execute_plan", {"plan_id": plan["id"]})
        cluster = await call_ok(client, "get_resource", {"project_id": "web", "resource": "Cluster"})
        outputs = (await read_json(client, "infra://projects/web/state"))["outputs"]
        assert outputs["ClusterName"] == cluster["id"] == "web-cluster"
        assert "(known after apply)" not in outputs.values()


async def test_a_cluster_removed_under_deletion_policy_snapshot_is_snapshotted_through_cloud_control_first(
    connect: ClientFactory, data_dir: Path
) -> None:
    template = (
        "Resources:\n  Cluster:\n    Type: AWS::RDS::DBCluster\n    DeletionPolicy: Snapshot\n"
        "    Properties: {Engine: aurora-postgresql, MasterUsername: app, ManageMasterUserPassword: true}\n"
    )
    async with connect("alice", elicitation_callback=Human()) as client:
        await make_project(client)
        planned = await call_ok(client, "plan_template", {"project_id": "web", "template": template})
        await approve(client, planned["plan_id"])
        await call_ok(client, "execute_plan", {"plan_id": planned["plan_id"]})
        cluster_id = (await call_ok(client, "get_resource", {"project_id": "web", "resource": "Cluster"}))["id"]

        other = "Resources:\n  Queue: {Type: AWS::SQS::Queue}\n"
        planned = await call_ok(client, "plan_template", {"project_id": "web", "template": other})
        plan = await read_json(client, planned["plan_uri"])
        removal = next(c for c in plan["changes"] if c["name"] == "Cluster")
        assert removal["snapshot"] == "snapshot_first"
        diff = (await client.read_resource(planned["diff_uri"])).contents[0].text  # type: ignore[union-attr]
        assert "AWS::RDS::ClusterSnapshot" in diff
        await approve(client, plan["id"])
        assert (await call_ok(client, "execute_plan", {"plan_id": plan["id"]}))["status"] == "executed"

        world = sandbox_world(data_dir)
        assert ("AWS::RDS::DBCluster", cluster_id) not in world
        assert any(kind == "AWS::RDS::ClusterSnapshot" for kind, _ in world)
        assert {kind for kind, _ in await state_resources(client)} == {"AWS::SQS::Queue"}

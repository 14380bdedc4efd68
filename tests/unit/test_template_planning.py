"""Planning templates and the plan-correctness bugs real templates exposed (services over fakes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra_mcp.domain.cloud import CallerIdentity
from infra_mcp.domain.plan import Action
from infra_mcp.errors import InfraError
from infra_mcp.services.planning import PlanningService
from infra_mcp.services.secrets import SecretSealer
from infra_mcp.services.templates import TemplatePlanning
from tests.fakes.stores import TEST_NOTARY, FakeProjectStore, FakeStateStores
from tests.unit.plan_builders import catalog
from tests.unit.test_planning_service import PROJECT

PASSWORD = "correct-horse-battery-staple"


class FakeIdentity:
    def __init__(self) -> None:
        self.calls = 0

    async def caller_identity(self, *, region: str) -> CallerIdentity:
        self.calls += 1
        return CallerIdentity(account="000000000000", arn="arn:aws:iam::000000000000:root", user_id="sandbox")


@pytest.fixture
def identity() -> FakeIdentity:
    return FakeIdentity()


@pytest.fixture
def planning(tmp_path: Path) -> PlanningService:
    store = FakeProjectStore()
    store.projects[PROJECT.id] = PROJECT
    return PlanningService(
        store, FakeStateStores(), catalog(), SecretSealer(tmp_path / "sealing.key"), notary=TEST_NOTARY, lint=False
    )


@pytest.fixture
def templates(planning: PlanningService, identity: FakeIdentity) -> TemplatePlanning:
    return TemplatePlanning(planning, identity)


REPLICA = """
Parameters:
  DBPassword: {Type: String, NoEcho: true}
Resources:
  Primary:
    Type: AWS::RDS::DBInstance
    Properties:
      DBInstanceClass: db.t3.micro
      Engine: postgres
      AllocatedStorage: "20"
      MasterUsername: admin
      MasterUserPassword: !Ref DBPassword
  Replica:
    Type: AWS::RDS::DBInstance
    Properties:
      DBInstanceClass: db.t3.micro
      SourceDBInstanceIdentifier: !Ref Primary
"""


async def test_a_ref_in_a_write_only_property_is_graphed_and_shown_not_sealed(templates: TemplatePlanning) -> None:
    plan = await templates.plan_template("web", REPLICA, {"DBPassword": PASSWORD}, "", "alice")
    assert plan.execution_order == [["Primary"], ["Replica"]]
    replica = plan.change("Replica")
    assert replica is not None
    assert replica.desired is not None
    assert replica.desired.properties["SourceDBInstanceIdentifier"] == {"Ref": "Primary"}
    shown = {pc.path: pc for pc in replica.property_changes}
    assert shown["/SourceDBInstanceIdentifier"].sensitive is False
    assert shown["/SourceDBInstanceIdentifier"].known_after_apply is True


async def test_noecho_parameters_and_passwords_are_sealed_and_never_shown(templates: TemplatePlanning) -> None:
    plan = await templates.plan_template("web", REPLICA, {"DBPassword": PASSWORD}, "", "alice")
    assert PASSWORD not in plan.model_dump_json()
    primary = plan.change("Primary")
    assert primary is not None
    assert {pc.path: pc.sensitive for pc in primary.property_changes}["/MasterUserPassword"] is True


async def test_noecho_parameter_in_a_plain_property_is_sealed_too(templates: TemplatePlanning) -> None:
    text = """
Parameters:
  Token: {Type: String, NoEcho: true}
Resources:
  Q: {Type: AWS::SQS::Queue, Properties: {QueueName: !Sub "q-${Token}"}}
"""
    plan = await templates.plan_template("web", text, {"Token": "tok-very-secret"}, "", "alice")
    assert "tok-very-secret" not in plan.model_dump_json()


async def test_the_account_is_asked_of_the_upstream_only_when_the_template_uses_it(
    templates: TemplatePlanning, identity: FakeIdentity
) -> None:
    plain = "Resources:\n  Q: {Type: AWS::SQS::Queue}\n"
    await templates.plan_template("web", plain, None, "", "alice")
    assert identity.calls == 0
    arn = 'Resources:\n  Q: {Type: AWS::SQS::Queue, Properties: {QueueName: !Sub "${AWS::AccountId}-q"}}\n'
    plan = await templates.plan_template("web", arn, None, "", "alice")
    assert identity.calls == 1
    change = plan.change("Q")
    assert change is not None
    assert change.desired is not None
    assert change.desired.properties["QueueName"] == "000000000000-q"


async def test_template_problems_are_one_validation_error_located_in_the_template(
    templates: TemplatePlanning,
) -> None:
    text = "Parameters:\n  Env: {Type: String}\nResources:\n  Q: {Type: AWS::SQS::Queue, Properties: {QueueName: !Ref Env}}\n"
    with pytest.raises(InfraError) as caught:
        await templates.plan_template("web", text, {}, "", "alice")
    assert caught.value.code == "VALIDATION_001"
    assert [f["path"] for f in caught.value.details["findings"]] == ["/Parameters/Env"]


async def test_string_booleans_and_numbers_are_converted_before_planning(templates: TemplatePlanning) -> None:
    text = """
Resources:
  Vpc:
    Type: AWS::EC2::VPC
    Properties:
      CidrBlock: 10.0.0.0/16
      EnableDnsSupport: "true"
      Tags: [{Key: n, Value: 1}]
"""
    plan = await templates.plan_template("web", text, None, "", "alice")
    vpc = plan.change("Vpc")
    assert vpc is not None
    assert vpc.action is Action.CREATE
    assert vpc.desired is not None
    assert json.loads(json.dumps(vpc.desired.properties)) == {
        "CidrBlock": "10.0.0.0/16",
        "EnableDnsSupport": True,
        "Tags": [{"Key": "n", "Value": "1"}],
    }


async def test_reference_and_property_errors_are_located_by_logical_id(templates: TemplatePlanning) -> None:
    text = """
Resources:
  Sg:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: web
      Colour: blue
"""
    with pytest.raises(InfraError) as caught:
        await templates.plan_template("web", text, None, "", "alice")
    assert [f["path"] for f in caught.value.details["findings"]] == ["/Resources/Sg/Properties/Colour"]


async def test_plan_changes_documents_take_the_same_functions_and_graph_them(planning: PlanningService) -> None:
    desired = {
        "resources": [
            {"name": "logs", "type": "AWS::S3::Bucket", "properties": {"BucketName": "logs-bucket"}},
            {
                "name": "q",
                "type": "AWS::SQS::Queue",
                "properties": {"QueueName": {"Fn::Join": ["-", [{"Ref": "logs"}, "events"]]}},
            },
            {
                "name": "policy",
                "type": "AWS::S3::BucketPolicy",
                "properties": {
                    "Bucket": {"Ref": "logs"},
                    "PolicyDocument": {
                        "Statement": [
                            {
                                "Effect": "Deny",
                                "Principal": "*",
                                "Action": "s3:*",
                                "Resource": {"Fn::Sub": "${logs.Arn}/*"},
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        ]
                    },
                },
            },
        ]
    }
    plan = await planning.plan_changes("web", desired, "", "alice")
    assert plan.execution_order == [["logs"], ["policy", "q"]]
    queue = plan.change("q")
    assert queue is not None
    assert {pc.path: pc.after for pc in queue.property_changes}["/QueueName"] == "(known after apply)"


async def test_reference_and_property_errors_come_in_one_answer_with_one_path_format(
    planning: PlanningService,
) -> None:
    desired = {
        "resources": [
            {"name": "vpc", "type": "AWS::EC2::VPC", "properties": {"CidrBlock": "10.0.0.0/16", "Colour": "blue"}},
            {"name": "subnet", "type": "AWS::EC2::Subnet", "properties": {"VpcId": {"Ref": "nope"}, "CidrBlock": "x"}},
        ]
    }
    with pytest.raises(InfraError) as caught:
        await planning.plan_changes("web", desired, "", "alice")
    located = {(f["rule"], f["path"]) for f in caught.value.details["findings"]}
    assert ("dangling-ref", "/resources/1/properties/VpcId") in located
    assert ("schema", "/resources/0/properties/Colour") in located


@pytest.mark.parametrize(
    ("region", "partition", "suffix"),
    [
        ("eu-west-1", "aws", "amazonaws.com"),
        ("cn-north-1", "aws-cn", "amazonaws.com.cn"),
        ("us-gov-west-1", "aws-us-gov", "amazonaws.com"),
    ],
)
async def test_pseudo_parameters_are_the_upstream_account_and_the_project_region(
    planning: PlanningService, identity: FakeIdentity, region: str, partition: str, suffix: str
) -> None:
    project = PROJECT.model_copy(
        update={"id": "far", "settings": PROJECT.settings.model_copy(update={"default_region": region})}
    )
    planning.projects.projects["far"] = project  # type: ignore[attr-defined]
    text = (
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n"
        '      QueueName: !Sub "${AWS::AccountId}-${AWS::Region}-${AWS::Partition}-${AWS::StackName}"\n'
        "      Tags: [{Key: at, Value: !Sub 'sqs.${AWS::URLSuffix}'}]\n"
    )
    plan = await TemplatePlanning(planning, identity).plan_template("far", text, None, "", "alice")
    change = plan.change("Q")
    assert change is not None
    assert change.desired is not None
    assert change.desired.region == region
    assert change.desired.properties["QueueName"] == f"000000000000-{region}-{partition}-far"
    assert change.desired.properties["Tags"] == [{"Key": "at", "Value": f"sqs.{suffix}"}]

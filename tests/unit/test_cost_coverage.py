"""Cost lines the template trials found wrong or missing: GSIs, replicas, Fargate, EKS node groups, ASGs."""

from __future__ import annotations

from typing import Any

import pytest

from infra_mcp.catalog.prices import bundled_pricing
from infra_mcp.domain.cost import estimate
from infra_mcp.domain.plan import Action, Change, ResourceSpec

PRICING = bundled_pricing()
HOURS = 730


def _create(name: str, type_name: str, properties: dict[str, Any]) -> Change:
    spec = ResourceSpec(name=name, type=type_name, properties=properties)
    return Change(name=name, type=type_name, action=Action.CREATE, desired=spec)


def _line(changes: list[Change], name: str) -> Any:
    cost = estimate(changes, None, PRICING)
    assert [u for u in cost.unpriced if u.name == name] == []
    return next(line for line in cost.lines if line.name == name)


def test_dynamodb_global_secondary_indexes_add_their_own_throughput() -> None:
    capacity = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
    table = _create(
        "t",
        "AWS::DynamoDB::Table",
        {
            "ProvisionedThroughput": capacity,
            "GlobalSecondaryIndexes": [{"IndexName": "i", "ProvisionedThroughput": capacity}],
        },
    )
    line = _line([table], "t")
    assert line.monthly_after == pytest.approx(2 * (5 * 0.00013 + 5 * 0.00065) * HOURS, abs=0.01)
    assert "1 GSI" in line.unit_price


def test_a_read_replica_is_priced_with_its_sources_engine_and_storage() -> None:
    source = _create(
        "db",
        "AWS::RDS::DBInstance",
        {"Engine": "postgres", "DBInstanceClass": "db.t3.micro", "AllocatedStorage": "20"},
    )
    replica = _create(
        "replica",
        "AWS::RDS::DBInstance",
        {"SourceDBInstanceIdentifier": {"Ref": "db"}, "DBInstanceClass": "db.t3.micro"},
    )
    assert _line([source, replica], "replica").monthly_after == _line([source], "db").monthly_after


def test_a_fargate_service_is_task_count_times_vcpu_and_memory() -> None:
    task = _create(
        "td", "AWS::ECS::TaskDefinition", {"Cpu": "256", "Memory": "512", "RequiresCompatibilities": ["FARGATE"]}
    )
    service = _create(
        "svc", "AWS::ECS::Service", {"LaunchType": "FARGATE", "DesiredCount": 2, "TaskDefinition": {"Ref": "td"}}
    )
    line = _line([task, service], "svc")
    assert line.monthly_after == pytest.approx(2 * (0.25 * 0.04048 + 0.5 * 0.004445) * HOURS, abs=0.01)
    assert "Fargate 2 task(s)" in line.unit_price


def test_an_eks_node_group_is_desired_size_times_its_instance_type() -> None:
    group = _create("ng", "AWS::EKS::Nodegroup", {"ScalingConfig": {"DesiredSize": 3}, "InstanceTypes": ["t3.medium"]})
    assert _line([group], "ng").monthly_after == pytest.approx(3 * 0.0416 * HOURS, abs=0.5)


def test_an_auto_scaling_group_is_desired_capacity_times_the_launch_templates_type() -> None:
    template = _create("lt", "AWS::EC2::LaunchTemplate", {"LaunchTemplateData": {"InstanceType": "t3.micro"}})
    group = _create(
        "asg",
        "AWS::AutoScaling::AutoScalingGroup",
        {"MinSize": "1", "MaxSize": "4", "DesiredCapacity": "2", "LaunchTemplate": {"LaunchTemplateId": {"Ref": "lt"}}},
    )
    assert _line([template, group], "asg").monthly_after == pytest.approx(2 * 0.0104 * HOURS, abs=0.01)

"""Cost estimates: priced lines with unit price and source, usage-based types unpriced, never zero."""

from __future__ import annotations

from typing import Any

import pytest

from infra_mcp.catalog.prices import bundled_pricing
from infra_mcp.domain.cost import USAGE_BASED, estimate
from infra_mcp.domain.plan import Action, Change, ResourceSpec
from infra_mcp.domain.state import StateFile, StateResource
from tests.unit.plan_builders import LINEAGE

PRICING = bundled_pricing()


def _create(name: str, type_name: str, properties: dict[str, Any], region: str = "us-east-1") -> Change:
    spec = ResourceSpec(name=name, type=type_name, region=region, properties=properties)
    return Change(name=name, type=type_name, action=Action.CREATE, region=region, desired=spec)


def _state(*rows: tuple[str, str, dict[str, Any]]) -> StateFile:
    return StateFile(
        project_id="web",
        serial=2,
        lineage=LINEAGE,
        resources=[StateResource(id=f"id-{n}", name=n, type=t, declared=p, properties=p) for n, t, p in rows],
    )


def test_an_instance_is_priced_hourly_times_730_with_its_unit_price_and_source() -> None:
    cost = estimate([_create("web", "AWS::EC2::Instance", {"InstanceType": "t3.micro"})], None, PRICING)
    (line,) = cost.lines
    assert line.monthly_after == pytest.approx(0.0104 * 730, abs=0.01)
    assert "0.0104 USD/hour" in line.unit_price
    assert line.source == "bundled price table 2026-10-01, us-east-1 on-demand"
    assert cost.monthly_delta == pytest.approx(line.monthly_after)


@pytest.mark.parametrize(
    ("type_name", "properties", "expected"),
    [
        ("AWS::EC2::Volume", {"Size": 100, "VolumeType": "gp3"}, 8.0),
        (
            "AWS::RDS::DBInstance",
            {"Engine": "postgres", "DBInstanceClass": "db.t3.micro", "AllocatedStorage": "20"},
            0.018 * 730 + 0.115 * 20,
        ),
        ("AWS::EC2::NatGateway", {}, 0.045 * 730),
        ("AWS::ElasticLoadBalancingV2::LoadBalancer", {"Type": "network"}, 0.0225 * 730),
        ("AWS::EKS::Cluster", {}, 0.10 * 730),
        ("AWS::EC2::EIP", {}, 0.005 * 730),
        ("AWS::SecretsManager::Secret", {}, 0.40),
        ("AWS::KMS::Key", {}, 1.00),
        ("AWS::Route53::HostedZone", {}, 0.50),
        ("AWS::ElastiCache::CacheCluster", {"CacheNodeType": "cache.t3.micro", "NumCacheNodes": 2}, 0.017 * 730 * 2),
    ],
)
def test_common_costly_types_are_priced_from_the_bundled_table(
    type_name: str, properties: dict[str, Any], expected: float
) -> None:
    (line,) = estimate([_create("r", type_name, properties)], None, PRICING).lines
    assert line.monthly_after == pytest.approx(expected, abs=0.01)


def test_usage_based_resources_are_unpriced_with_a_reason_never_zero() -> None:
    cost = estimate([_create("b", "AWS::S3::Bucket", {}), _create("f", "AWS::Lambda::Function", {})], None, PRICING)
    assert cost.lines == []
    assert {u.name for u in cost.unpriced} == {"b", "f"}
    assert all(u.reason.startswith("usage-based") for u in cost.unpriced)
    assert all(USAGE_BASED[t].startswith(("usage-based", "priced")) for t in USAGE_BASED)


def test_on_demand_dynamodb_is_usage_based_and_provisioned_is_priced() -> None:
    on_demand = _create("t", "AWS::DynamoDB::Table", {"BillingMode": "PAY_PER_REQUEST"})
    provisioned = _create(
        "p", "AWS::DynamoDB::Table", {"ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}}
    )
    cost = estimate([on_demand, provisioned], None, PRICING)
    assert [u.name for u in cost.unpriced] == ["t"]
    assert [line.name for line in cost.lines] == ["p"]


def test_free_resources_are_left_out_of_lines_and_unpriced() -> None:
    cost = estimate([_create("v", "AWS::EC2::VPC", {"CidrBlock": "10.0.0.0/16"})], None, PRICING)
    assert (cost.lines, cost.unpriced, cost.monthly_after) == ([], [], 0.0)


def test_a_type_missing_from_the_table_is_unpriced_and_says_so() -> None:
    (unpriced,) = estimate(
        [_create("x", "AWS::EC2::Instance", {"InstanceType": "u-24tb1.metal"})], None, PRICING
    ).unpriced
    assert "not in the bundled price table" in unpriced.reason


def test_a_price_depending_on_a_value_known_after_apply_is_unpriced() -> None:
    change = _create("web", "AWS::EC2::Instance", {"InstanceType": {"Ref": "chosen-type"}})
    (unpriced,) = estimate([change], None, PRICING).unpriced
    assert "known only after apply" in unpriced.reason


def test_other_regions_apply_a_multiplier_and_say_so() -> None:
    (line,) = estimate(
        [_create("web", "AWS::EC2::Instance", {"InstanceType": "t3.micro"}, "eu-west-1")], None, PRICING
    ).lines
    assert line.monthly_after == pytest.approx(0.0104 * 730 * 1.1, abs=0.01)
    assert "eu-west-1" in line.source


def test_before_after_and_delta_follow_an_update() -> None:
    state = _state(
        ("web", "AWS::EC2::Instance", {"InstanceType": "t3.micro"}), ("db", "AWS::EC2::Volume", {"Size": 10})
    )
    spec = ResourceSpec(name="web", type="AWS::EC2::Instance", properties={"InstanceType": "t3.large"})
    change = Change(name="web", type=spec.type, action=Action.UPDATE, desired=spec)
    cost = estimate([change], state, PRICING)
    assert cost.monthly_before == pytest.approx(0.0104 * 730 + 1.0, abs=0.01)
    assert cost.monthly_delta == pytest.approx((0.0832 - 0.0104) * 730, abs=0.01)
    assert cost.monthly_after == pytest.approx(cost.monthly_before + cost.monthly_delta, abs=0.01)


def test_deleting_a_priced_resource_lowers_the_cost() -> None:
    state = _state(("nat", "AWS::EC2::NatGateway", {}))
    cost = estimate([Change(name="nat", type="AWS::EC2::NatGateway", action=Action.DELETE)], state, PRICING)
    assert cost.monthly_delta == pytest.approx(-0.045 * 730, abs=0.01)
    assert cost.monthly_after == 0.0


def test_a_service_is_priced_from_its_task_definition_current_before_and_as_planned_after() -> None:
    task = {"Cpu": "256", "Memory": "512"}
    service = {"LaunchType": "FARGATE", "DesiredCount": 1, "TaskDefinition": {"Ref": "task"}}
    current = _state(
        ("task", "AWS::ECS::TaskDefinition", task),
        ("svc", "AWS::ECS::Service", service),
        ("net", "AWS::EC2::Subnet", {"CidrBlock": "10.0.0.0/24"}),
    )
    bigger = ResourceSpec(name="task", type="AWS::ECS::TaskDefinition", properties={"Cpu": "1024", "Memory": "2048"})
    busier = ResourceSpec(name="svc", type="AWS::ECS::Service", properties={**service, "DesiredCount": 2})
    changes = [
        Change(name="task", type=bigger.type, action=Action.UPDATE, desired=bigger),
        Change(name="svc", type=busier.type, action=Action.UPDATE, desired=busier),
    ]
    cost = estimate(changes, current, PRICING)
    quarter, whole = (0.25 * 0.04048 + 0.5 * 0.004445) * 730, (1 * 0.04048 + 2 * 0.004445) * 730
    assert cost.monthly_before == pytest.approx(quarter, abs=0.01)  # the task definition as it is
    (line,) = cost.lines
    assert line.name == "svc"
    assert line.monthly_after == pytest.approx(2 * whole, abs=0.01)  # the task definition as planned
    assert cost.monthly_after == pytest.approx(quarter + line.monthly_after - line.monthly_before, abs=0.01)

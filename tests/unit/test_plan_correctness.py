"""The plan-correctness bugs real templates exposed: replacements, interruptions, unordered lists, rendering."""

from __future__ import annotations

from typing import Any

from infra_mcp.domain.plan import Action, RiskLevel
from infra_mcp.domain.render import render_plan
from tests.unit.plan_builders import applied, plan_for, resources


def table(key: str = "id", **extra: Any) -> dict[str, Any]:
    return {
        "name": "orders",
        "type": "AWS::DynamoDB::Table",
        "properties": {
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": key, "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": key, "KeyType": "HASH"}],
            **extra,
        },
    }


def instance(instance_type: str = "t3.micro") -> dict[str, Any]:
    return {
        "name": "web",
        "type": "AWS::EC2::Instance",
        "properties": {"ImageId": "ami-12345678", "InstanceType": instance_type},
    }


def test_a_dynamodb_key_schema_change_is_a_high_risk_replacement_that_says_it_depends_on_the_value() -> None:
    plan = plan_for(resources(table("pk")), applied(resources(table("id"))))
    change = plan.changes[0]
    assert change.action is Action.REPLACE
    assert change.risk is RiskLevel.HIGH
    assert any("conditional create-only" in reason for reason in change.replacement_reasons)
    assert "KeySchema" in render_plan(plan)


def test_an_instance_type_change_is_an_update_named_as_an_interruption() -> None:
    plan = plan_for(resources(instance("t3.large")), applied(resources(instance("t3.micro"))))
    change = plan.changes[0]
    assert change.action is Action.UPDATE
    assert change.interruptions
    assert change.interruptions[0].startswith("InstanceType: the instance is stopped and started")
    assert change.risk is RiskLevel.MEDIUM
    assert "interruption: InstanceType" in render_plan(plan)


def test_an_rds_class_change_names_the_reboot() -> None:
    def db(size: str) -> dict[str, Any]:
        return {
            "name": "db",
            "type": "AWS::RDS::DBInstance",
            "properties": {"DBInstanceClass": size, "Engine": "postgres", "AllocatedStorage": "20"},
        }

    change = plan_for(resources(db("db.t3.large")), applied(resources(db("db.t3.micro")))).changes[0]
    assert change.action is Action.UPDATE
    assert "reboots" in change.interruptions[0]


def sg(rules: list[dict[str, Any]], tags: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "name": "web-sg",
        "type": "AWS::EC2::SecurityGroup",
        "properties": {"GroupDescription": "web", "SecurityGroupIngress": rules, "Tags": tags},
    }


RULES = [
    {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "CidrIp": "0.0.0.0/0"},
    {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": "0.0.0.0/0"},
]
TAGS = [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}]


def test_a_reordered_unordered_list_is_no_change() -> None:
    before = applied(resources(sg(RULES, TAGS)))
    plan = plan_for(resources(sg(RULES[::-1], TAGS[::-1])), before)
    assert not plan.has_changes


def test_a_changed_unordered_list_is_one_change_of_the_whole_list() -> None:
    before = applied(resources(sg(RULES, TAGS)))
    more = [*RULES[::-1], {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIp": "10.0.0.0/8"}]
    change = plan_for(resources(sg(more, TAGS)), before).changes[0]
    assert change.action is Action.UPDATE
    assert [pc.path for pc in change.property_changes] == ["/SecurityGroupIngress"]


def test_nested_values_are_rendered_over_several_lines_not_cut() -> None:
    many = [{"IpProtocol": "tcp", "FromPort": p, "ToPort": p, "CidrIp": "10.0.0.0/8"} for p in range(8000, 8006)]
    text = render_plan(plan_for(resources(sg(many, TAGS))))
    assert '"FromPort": 8005' in text
    assert " ..." not in text


def test_fields_added_for_templates_and_drift_leave_old_fingerprints_and_checksums_unchanged() -> None:
    from infra_mcp.domain.common import sha256_of
    from infra_mcp.domain.plan import Change, Plan

    change = Change(name="q", type="AWS::SQS::Queue", action=Action.CREATE)
    plan = Plan(
        id="plan-000000000000", project_id="web", author="a", base_serial=0, base_lineage=None, changes=[change]
    )
    old_content = {
        "project_id": "web",
        "base_serial": 0,
        "base_lineage": None,
        "changes": [
            {
                k: v
                for k, v in change.model_dump(mode="json").items()
                if k not in ("interruptions", "retained", "snapshot", "record_only", "live_values")
            }
        ],
        "execution_order": [],
    }
    assert plan.compute_fingerprint() == sha256_of(old_content)
    state = applied(resources({"name": "q", "type": "AWS::SQS::Queue"}))
    document = state.to_document()
    assert "deletionPolicy" not in document["resources"][0]
    assert sha256_of(document["resources"]) == state.compute_checksum()

"""Risk per change and per plan, with reasons a reviewer can weigh."""

from __future__ import annotations

from infra_mcp.domain.plan import Action, Change, PropertyChange, RiskLevel
from infra_mcp.domain.risk import DATA_HOLDING, assess, plan_risk, with_risk


def _change(type_name: str, action: Action, *paths: str, name: str = "r") -> Change:
    return Change(
        name=name,
        type=type_name,
        action=action,
        property_changes=[PropertyChange(path=p, before="a", after="b") for p in paths],
        replacement_reasons=["Engine (create-only: changing it forces replacement)"]
        if action is Action.REPLACE
        else [],
    )


def test_deleting_a_database_is_high_risk_and_says_what_is_lost() -> None:
    level, reasons = assess(_change("AWS::RDS::DBInstance", Action.DELETE))
    assert level is RiskLevel.HIGH
    assert "database" in reasons[0]


def test_replacing_a_data_holding_resource_is_high_risk_and_says_why_it_is_replaced() -> None:
    level, reasons = assess(_change("AWS::S3::Bucket", Action.REPLACE, "/BucketName"))
    assert level is RiskLevel.HIGH
    assert any("create-only" in r for r in reasons)


def test_every_listed_data_holding_type_is_high_risk_to_delete() -> None:
    for type_name in DATA_HOLDING:
        assert assess(_change(type_name, Action.DELETE))[0] is RiskLevel.HIGH, type_name


def test_security_groups_iam_routing_and_kms_are_at_least_medium() -> None:
    for type_name in (
        "AWS::EC2::SecurityGroup",
        "AWS::IAM::Role",
        "AWS::IAM::Policy",
        "AWS::EC2::Route",
        "AWS::EC2::NatGateway",
        "AWS::EC2::TransitGateway",
        "AWS::EC2::VPCPeeringConnection",
        "AWS::EC2::NetworkAcl",
        "AWS::KMS::Alias",
    ):
        for action in (Action.CREATE, Action.UPDATE):
            assert assess(_change(type_name, action, "/X"))[0].rank >= RiskLevel.MEDIUM.rank, (type_name, action)


def test_tag_only_updates_are_low_risk() -> None:
    level, reasons = assess(_change("AWS::RDS::DBInstance", Action.UPDATE, "/Tags/Env", "/Tags/Team"))
    assert level is RiskLevel.LOW
    assert "tags only" in reasons[0]


def test_iam_tag_only_updates_stay_medium_because_tags_can_grant_access() -> None:
    assert assess(_change("AWS::IAM::Role", Action.UPDATE, "/Tags/Team"))[0] is RiskLevel.MEDIUM


def test_creating_an_ordinary_resource_is_low_risk() -> None:
    assert assess(_change("AWS::EC2::Subnet", Action.CREATE, "/CidrBlock"))[0] is RiskLevel.LOW


def test_deleting_an_ordinary_resource_is_medium_risk() -> None:
    assert assess(_change("AWS::EC2::Subnet", Action.DELETE))[0] is RiskLevel.MEDIUM


def test_the_plan_risk_is_its_riskiest_change_with_that_changes_reasons() -> None:
    changes = [
        with_risk(_change("AWS::EC2::Subnet", Action.CREATE, "/CidrBlock", name="a")),
        with_risk(_change("AWS::EC2::SecurityGroup", Action.UPDATE, "/GroupDescription", name="b")),
        with_risk(_change("AWS::DynamoDB::Table", Action.DELETE, name="c")),
    ]
    level, reasons = plan_risk(changes)
    assert level is RiskLevel.HIGH
    assert len(reasons) == 1
    assert reasons[0].startswith("deleting c")


def test_a_plan_without_changes_is_low_risk() -> None:
    assert plan_risk([]) == (RiskLevel.LOW, [])

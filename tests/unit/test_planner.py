"""make_plan: a pending, fingerprinted plan with order, summary, risk and cost."""

from __future__ import annotations

import pytest

from infra_mcp.domain.plan import Action, PlanStatus, RiskLevel
from infra_mcp.errors import ValidationFailed
from tests.unit.plan_builders import LINEAGE, applied, plan_for, resources, subnet, vpc

SG = {
    "name": "web-sg",
    "type": "AWS::EC2::SecurityGroup",
    "properties": {"GroupDescription": "web", "VpcId": {"Ref": "web-vpc"}},
}


def test_a_plan_is_pending_against_the_states_serial_and_lineage_with_a_fingerprint() -> None:
    plan = plan_for(resources(vpc(), vpc("b", "10.1.0.0/16")), applied(resources(vpc()), serial=7))
    assert plan.status is PlanStatus.PENDING
    assert (plan.base_serial, plan.base_lineage) == (7, LINEAGE)
    assert plan.fingerprint == plan.compute_fingerprint()
    assert plan.fingerprint.startswith("sha256:")


def test_a_plan_against_no_state_has_serial_zero_and_no_lineage() -> None:
    plan = plan_for(resources(vpc()))
    assert (plan.base_serial, plan.base_lineage) == (0, None)


def test_creates_run_in_dependency_order_and_deletes_after_in_reverse_order() -> None:
    old = resources(vpc("old-vpc", "10.9.0.0/16"), subnet("old-subnet", "old-vpc", "10.9.1.0/24"))
    plan = plan_for(resources(vpc(), subnet(), SG), applied(old))
    assert plan.execution_order == [["web-vpc"], ["web-sg", "web-subnet"], ["old-subnet"], ["old-vpc"]]
    assert plan.change("web-sg").depends_on == ["web-vpc"]  # type: ignore[union-attr]
    assert plan.change("old-vpc").depends_on == ["old-subnet"]  # type: ignore[union-attr]


def test_unchanged_resources_are_counted_not_listed() -> None:
    plan = plan_for(resources(vpc(), vpc("b", "10.1.0.0/16")), applied(resources(vpc())))
    assert [c.name for c in plan.changes] == ["b"]
    assert (plan.summary.create, plan.summary.no_op) == (1, 1)


def test_the_summary_counts_every_action_and_its_text_is_filled() -> None:
    state = applied(resources(vpc(), vpc("gone", "10.9.0.0/16"), vpc("t", "10.8.0.0/16")))
    plan = plan_for(
        resources(vpc(cidr="10.1.0.0/16"), vpc("t", "10.8.0.0/16", tags={"a": "b"}), vpc("n", "10.2.0.0/16")), state
    )
    s = plan.summary
    assert (s.create, s.update, s.replace, s.delete) == (1, 1, 1, 1)
    assert s.text == "Plan: 1 to add, 1 to change, 1 to replace, 1 to destroy."


def test_the_plan_risk_is_the_riskiest_changes() -> None:
    bucket = {"name": "assets", "type": "AWS::S3::Bucket", "properties": {}}
    plan = plan_for(resources(vpc()), applied(resources(vpc(), bucket)))
    assert plan.change("assets").action is Action.DELETE  # type: ignore[union-attr]
    assert plan.risk is RiskLevel.HIGH
    assert "assets" in plan.risk_reasons[0]


def test_the_fingerprint_changes_with_the_content() -> None:
    one = plan_for(resources(vpc()))
    two = plan_for(resources(vpc(cidr="10.1.0.0/16")))
    assert one.fingerprint != two.fingerprint


def test_a_delete_of_something_still_referred_to_is_refused() -> None:
    state = applied(resources(vpc(), subnet()))
    with pytest.raises(ValidationFailed) as caught:
        plan_for(resources(), state, full=False, delete=["web-vpc"])
    (finding,) = caught.value.details["findings"]
    assert (finding["rule"], finding["resource"]) == ("in-use", "web-vpc")

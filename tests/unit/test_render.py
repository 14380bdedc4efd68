"""The text rendering: terraform-plan-like, readable at a glance."""

from __future__ import annotations

from infra_mcp.domain.plan import KNOWN_AFTER_APPLY, PlanSummary
from infra_mcp.domain.render import render_plan, summary_line
from infra_mcp.domain.sealed import secret_digest
from tests.unit.plan_builders import applied, plan_for, resources, subnet, vpc


def test_the_summary_line_reads_like_terraform() -> None:
    assert summary_line(PlanSummary(create=3, update=1, replace=1, delete=2)) == (
        "Plan: 3 to add, 1 to change, 1 to replace, 2 to destroy."
    )


def test_a_plan_without_changes_says_so() -> None:
    state = applied(resources(vpc()))
    plan = plan_for(resources(vpc()), state)
    assert plan.summary.text.startswith("No changes.")
    assert "1 resource(s) unchanged." in render_plan(plan)


def test_each_action_has_its_symbol_and_the_summary_closes_the_text() -> None:
    state = applied(resources(vpc(), subnet(), vpc("old", "10.9.0.0/16"), vpc("tagged", "10.8.0.0/16")))
    desired = resources(
        vpc(cidr="10.1.0.0/16"),
        subnet(cidr="10.1.1.0/24"),
        vpc("tagged", "10.8.0.0/16", tags={"Env": "prod"}),
        vpc("new", "10.7.0.0/16"),
    )
    text = render_plan(plan_for(desired, state))
    assert '  + resource "AWS::EC2::VPC" "new" {' in text
    assert '  ~ resource "AWS::EC2::VPC" "tagged" {' in text
    assert '-/+ resource "AWS::EC2::VPC" "web-vpc" {' in text
    assert '  - resource "AWS::EC2::VPC" "old" {' in text
    assert '~ CidrBlock = "10.0.0.0/16" -> "10.1.0.0/16"  # forces replacement' in text
    assert "because CidrBlock (create-only: changing it forces replacement)" in text
    assert text.splitlines()[-1] == "Plan: 1 to add, 1 to change, 2 to replace, 1 to destroy."


def test_unknown_and_sensitive_values_are_rendered_as_such() -> None:
    db = {
        "name": "db",
        "type": "AWS::RDS::DBInstance",
        "properties": {
            "DBInstanceClass": "db.t3.micro",
            "Engine": "postgres",
            "MasterUserPassword": {"__sealed__": "tok", "sha256": secret_digest("pw")},
        },
    }
    text = render_plan(plan_for(resources(vpc(), subnet(), db)))
    assert f"+ VpcId     = {KNOWN_AFTER_APPLY}" in text
    assert "+ MasterUserPassword = (sensitive value)" in text


def test_risk_cost_and_unpriced_sections_are_shown() -> None:
    instance = {
        "name": "web",
        "type": "AWS::EC2::Instance",
        "properties": {"InstanceType": "t3.micro", "ImageId": "ami-12345678"},
    }
    bucket = {"name": "assets", "type": "AWS::S3::Bucket"}
    text = render_plan(plan_for(resources(instance, bucket)))
    assert "Risk: LOW" in text
    assert "Cost (monthly, USD): 0.00 -> 7.59 (+7.59)" in text
    assert "assets (AWS::S3::Bucket): usage-based" in text
    assert "Source: bundled price table 2026-10-01" in text

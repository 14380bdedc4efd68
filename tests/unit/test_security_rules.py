"""Security-relevant changes are found, named and rated at least medium; safe twins are not flagged.

The cases are the approval-trust review's: each dangerous change was rated low and auto-approved
by the README's example rule before.
"""

from __future__ import annotations

from typing import Any

import pytest

from infra_mcp.domain.approval_rules import rule_mismatches
from infra_mcp.domain.plan import Action, Change, Plan, PropertyChange, ResourceSpec, RiskLevel
from infra_mcp.domain.project import AutoApprovalRule
from infra_mcp.domain.risk import with_risk
from infra_mcp.domain.security import security_findings

RDS = "AWS::RDS::DBInstance"


def created(type_name: str, **props: Any) -> Change:
    return Change(
        name="r", type=type_name, action=Action.CREATE, desired=ResourceSpec(name="r", type=type_name, properties=props)
    )


def updated(type_name: str, path: str, before: Any, after: Any, *, sensitive: bool = False, **props: Any) -> Change:
    return Change(
        name="r",
        type=type_name,
        action=Action.UPDATE,
        physical_id="r-1",
        property_changes=[PropertyChange(path=path, before=before, after=after, sensitive=sensitive)],
        desired=ResourceSpec(name="r", type=type_name, properties=props),
    )


def ingress(cidr_key: str, cidr: str, port: int, protocol: str = "tcp") -> Change:
    rule = {"IpProtocol": protocol, "FromPort": port, "ToPort": port, cidr_key: cidr}
    return created("AWS::EC2::SecurityGroup", GroupDescription="web", SecurityGroupIngress=[rule])


def policy(principal: Any, action: Any) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": principal, "Action": action}]}


DANGEROUS = {
    "rds deletion protection turned off": updated(RDS, "/DeletionProtection", True, False, DeletionProtection=False),
    "rds backups turned off": updated(RDS, "/BackupRetentionPeriod", 7, 0, BackupRetentionPeriod=0),
    "rds made public": updated(RDS, "/PubliclyAccessible", False, True, PubliclyAccessible=True),
    "rds master password changed": updated(
        RDS, "/MasterUserPassword", "(sensitive value)", "(sensitive value)", sensitive=True
    ),
    "rds storage encryption off": created(RDS, StorageEncrypted=False),
    "sqs queue policy to anyone": created(
        "AWS::SQS::QueuePolicy", Queues=["q"], PolicyDocument=policy("*", "sqs:SendMessage")
    ),
    "sqs queue policy to any AWS principal": created(
        "AWS::SQS::QueuePolicy", Queues=["q"], PolicyDocument=policy({"AWS": "*"}, "sqs:SendMessage")
    ),
    "ssh from anywhere": ingress("CidrIp", "0.0.0.0/0", 22),
    "rdp from anywhere over ipv6": ingress("CidrIpv6", "::/0", 3389),
    "all traffic from anywhere": ingress("CidrIp", "0.0.0.0/0", -1, protocol="-1"),
    "standalone ingress rule on 8080": created(
        "AWS::EC2::SecurityGroupIngress",
        GroupId="sg-1",
        IpProtocol="tcp",
        FromPort=8080,
        ToPort=8080,
        CidrIp="0.0.0.0/0",
    ),
    "s3 public access block off": created(
        "AWS::S3::Bucket",
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": False,
            "IgnorePublicAcls": False,
            "BlockPublicPolicy": False,
            "RestrictPublicBuckets": False,
        },
    ),
    "s3 encryption removed": updated("AWS::S3::Bucket", "/BucketEncryption", {"x": 1}, None),
    "iam wildcard policy": created(
        "AWS::IAM::ManagedPolicy", PolicyDocument={"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    ),
    "cloudtrail logging off": updated("AWS::CloudTrail::Trail", "/IsLogging", True, False, IsLogging=False),
    "dynamodb point in time recovery off": updated(
        "AWS::DynamoDB::Table",
        "/PointInTimeRecoverySpecification/PointInTimeRecoveryEnabled",
        True,
        False,
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": False},
    ),
    "lambda invocable by anyone": created(
        "AWS::Lambda::Permission", Action="lambda:InvokeFunction", FunctionName="f", Principal="*"
    ),
    "function runs with another role": updated(
        "AWS::Lambda::Function", "/Role", "arn:aws:iam::1:role/a", "arn:aws:iam::1:role/admin", Role="arn:.../admin"
    ),
}

SAFE = {
    "rds deletion protection turned on": updated(RDS, "/DeletionProtection", False, True, DeletionProtection=True),
    "rds backups kept": updated(RDS, "/BackupRetentionPeriod", 7, 14, BackupRetentionPeriod=14),
    "rds private": created(RDS, PubliclyAccessible=False, StorageEncrypted=True, DBInstanceClass="db.t3.micro"),
    "https from anywhere": ingress("CidrIp", "0.0.0.0/0", 443),
    "http from anywhere over ipv6": ingress("CidrIpv6", "::/0", 80),
    "ssh from the office": ingress("CidrIp", "203.0.113.0/24", 22),
    "queue policy to one account": created(
        "AWS::SQS::QueuePolicy",
        Queues=["q"],
        PolicyDocument=policy({"AWS": "arn:aws:iam::123456789012:root"}, "sqs:SendMessage"),
    ),
    "deny everything to anyone": created(
        "AWS::SQS::QueuePolicy",
        Queues=["q"],
        PolicyDocument={"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "*"}]},
    ),
    "bucket fully blocked": created(
        "AWS::S3::Bucket",
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    ),
    "new function with a role": created("AWS::Lambda::Function", Role="arn:aws:iam::1:role/a", Runtime="python3.12"),
    "vpc cidr change": updated("AWS::EC2::VPC", "/EnableDnsSupport", False, True, EnableDnsSupport=True),
}


@pytest.mark.parametrize("case", sorted(DANGEROUS))
def test_a_security_relevant_change_is_found_and_rated_at_least_medium(case: str) -> None:
    change = with_risk(DANGEROUS[case])
    assert change.security_findings, case
    assert change.risk.rank >= RiskLevel.MEDIUM.rank, (case, change.risk_reasons)
    assert change.security_findings[0] in change.risk_reasons


@pytest.mark.parametrize("case", sorted(SAFE))
def test_a_safe_twin_is_not_flagged(case: str) -> None:
    assert security_findings(SAFE[case]) == [], case


@pytest.mark.parametrize("case", sorted(DANGEROUS))
def test_the_readmes_example_rule_never_auto_approves_a_security_finding(case: str) -> None:
    change = with_risk(DANGEROUS[case])
    plan = Plan(id="plan-1", project_id="web", author="ed", base_serial=0, base_lineage=None, changes=[change])
    # Even a rule that allows medium risk and every action leaves these to a person.
    rule = AutoApprovalRule(max_risk="high", max_cost_delta_usd=1000, actions=["create", "update"])  # type: ignore[arg-type]
    assert any("security-relevant" in reason for reason in rule_mismatches(plan, rule)), case


def test_a_finding_names_the_resource_and_the_property() -> None:
    (finding,) = security_findings(updated(RDS, "/DeletionProtection", True, False, DeletionProtection=False))
    assert finding.startswith("r (AWS::RDS::DBInstance) /DeletionProtection")
    assert "deletion protection" in finding

"""Who the sandbox says you are, and how its ARNs look.

The account id is ``000000000000``. AWS never issues it (account ids of real accounts are
random twelve-digit numbers; all-zeros is the well-known placeholder used by documentation
and local emulators), so an ARN or an account id from the sandbox cannot be mistaken for a
real account's, and a tool that checks ``Account == "000000000000"`` knows it is talking to
the sandbox.
"""

from __future__ import annotations

from typing import Any

SANDBOX_ACCOUNT_ID = "000000000000"
SANDBOX_USER = "infra-mcp-sandbox"
SANDBOX_CALLER_ARN = f"arn:aws:iam::{SANDBOX_ACCOUNT_ID}:user/{SANDBOX_USER}"
SANDBOX_USER_ID = "AIDASANDBOX000000000000"
# RFC 2606 reserves .invalid: a host name made up by the sandbox can never resolve.
SANDBOX_DNS_SUFFIX = "sandbox.invalid"

# Services whose ARNs have no region (global) or neither region nor account (S3 buckets).
_GLOBAL_SERVICES = frozenset({"iam", "cloudfront", "route53", "organizations", "waf", "globalaccelerator"})
_NO_ACCOUNT_SERVICES = frozenset({"s3"})


def caller_identity() -> dict[str, Any]:
    """STS ``GetCallerIdentity``'s answer, in AWS's PascalCase."""
    return {"UserId": SANDBOX_USER_ID, "Account": SANDBOX_ACCOUNT_ID, "Arn": SANDBOX_CALLER_ARN}


def arn_for(type_name: str, region: str, resource: str) -> str:
    """An ARN in the sandbox account for one resource of ``type_name``.

    ``AWS::EC2::VPC`` / ``vpc-0abc`` -> ``arn:aws:ec2:us-east-1:000000000000:vpc/vpc-0abc``.
    """
    _, service, short = type_name.split("::")
    service = service.lower()
    if service in _NO_ACCOUNT_SERVICES:
        return f"arn:aws:{service}:::{resource}"
    where = "" if service in _GLOBAL_SERVICES else region
    form = _RESOURCE_FORMS.get(type_name)
    if form is not None:
        return f"arn:aws:{service}:{where}:{SANDBOX_ACCOUNT_ID}:{form.format(resource)}"
    return f"arn:aws:{service}:{where}:{SANDBOX_ACCOUNT_ID}:{short.lower()}/{resource}"


# Types whose ARN is not "<type>/<name>" in AWS. Lambda's "function:<name>" matters most: every
# AWS::Lambda::Permission and API Gateway integration parses it.
_RESOURCE_FORMS: dict[str, str] = {
    "AWS::Lambda::Function": "function:{}",
    "AWS::Lambda::LayerVersion": "layer:{}",
    "AWS::Logs::LogGroup": "log-group:{}:*",
    "AWS::SNS::Topic": "{}",
    "AWS::SQS::Queue": "{}",
    "AWS::RDS::DBInstance": "db:{}",
    "AWS::RDS::DBCluster": "cluster:{}",
    "AWS::RDS::DBSubnetGroup": "subgrp:{}",
    "AWS::ElastiCache::CacheCluster": "cluster:{}",
    "AWS::StepFunctions::StateMachine": "stateMachine:{}",
    "AWS::Events::Rule": "rule/{}",
    "AWS::SecretsManager::Secret": "secret:{}",
}

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
    return f"arn:aws:{service}:{where}:{SANDBOX_ACCOUNT_ID}:{short.lower()}/{resource}"

"""Security-relevant changes: what a reviewer must not miss, whatever the resource type.

Type-level sensitivity (IAM, security groups, routing, KMS) lives in ``domain/risk``. This module
reads *what a change does* to properties, because the dangerous part of an RDS update or a queue
policy is in the values: deletion protection turned off, backups set to zero, a wildcard
principal, SSH open to the internet. Each finding is one sentence naming the resource and the
property, so the approval prompt and the plan can show it as is.

Two kinds of rules:

* **configuration** rules read the declared values of the properties a change touches (every
  declared property of a creation): public access, wildcard principals or actions, ingress from
  anywhere on ports other than 80/443, encryption or logging set off, backups set to zero;
* **transition** rules read before/after: protection or encryption that was on and is now off
  or removed, a credential (write-only secret) changed on an existing resource, an existing
  resource's IAM role or policies changed.

A linter sees one template; it cannot see a transition. Why these are hand rules and not
cfn-lint's or another rule set is said in the README ("Risk and auto-approval").
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from infra_mcp.domain.paths import pointer_segments
from infra_mcp.domain.plan import Action, Change, PropertyChange

OPEN_CIDRS = frozenset({"0.0.0.0/0", "::/0"})
WEB_PORTS = frozenset({80, 443})

_PUBLIC_TRUE = {
    "PubliclyAccessible": "made publicly accessible from the internet",
    "AssociatePublicIpAddress": "gets a public IP address",
    "MapPublicIpOnLaunch": "gives every instance launched in it a public IP address",
    "PublicAccess": "allows public access",
}
_PUBLIC_ACLS = frozenset({"PublicRead", "PublicReadWrite", "AuthenticatedRead"})
_PUBLIC_BLOCK_FLAGS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")

# Set to false: the protection is off. Removed after being true: off too (AWS defaults are off).
_PROTECTION_FLAGS = {
    "DeletionProtection": "deletion protection",
    "DeletionProtectionEnabled": "deletion protection",
    "EnableTerminationProtection": "termination protection",
    "TerminationProtection": "termination protection",
}
_BACKUP_ZERO = {
    "BackupRetentionPeriod": "automated backups are turned off (retention 0)",
    "SnapshotRetentionLimit": "automatic snapshots are turned off (limit 0)",
}
_BACKUP_FALSE = {"PointInTimeRecoveryEnabled": "point-in-time recovery is turned off"}
_ENCRYPTION_KEY = re.compile(
    r"(?i)^(storage)?encrypt(ed|ion)?(enabled)?$|^(sse|ssespecification)?enabled$|encryptionenabled$"
)
_ENCRYPTION_CONTAINERS = frozenset(
    {
        "BucketEncryption",
        "SSESpecification",
        "EncryptionConfiguration",
        "EncryptionAtRestOptions",
        "KmsKeyId",
        "KMSMasterKeyId",
        "KmsMasterKeyId",
        "EncryptionSpecification",
        "SseSpecification",
    }
)
_LOGGING_FALSE = {
    "IsLogging": "logging is turned off",
    "EnableLogFileValidation": "log file validation is turned off",
    "LoggingEnabled": "logging is turned off",
}
_LOGGING_CONTAINERS = frozenset(
    {
        "LoggingConfiguration",
        "LoggingProperties",
        "AccessLogSettings",
        "AccessLogSetting",
        "LogPublishingOptions",
        "Logging",
        "LogConfiguration",
        "MonitoringConfiguration",
    }
)
_IAM_BINDINGS = frozenset(
    {
        "Role",
        "RoleArn",
        "ExecutionRoleArn",
        "TaskRoleArn",
        "ServiceRole",
        "ServiceRoleArn",
        "IamInstanceProfile",
        "InstanceProfileArn",
        "ManagedPolicyArns",
        "Policies",
        "PolicyDocument",
        "AssumeRolePolicyDocument",
        "PermissionsBoundary",
        "KeyPolicy",
    }
)


def _is_true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _is_false(value: Any) -> bool:
    return value is False or (isinstance(value, str) and value.lower() == "false")


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _walk(value: Any, path: str) -> Iterator[tuple[str, str, Any]]:
    """Every (path, key, value) inside ``value``; references and sealed values are opaque leaves."""
    if isinstance(value, dict):
        for key, inner in value.items():
            here = f"{path}/{key}"
            yield here, str(key), inner
            yield from _walk(inner, here)
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from _walk(inner, f"{path}/{i}")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _wildcard_principal(principal: Any) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, dict):
        return any("*" in _as_list(v) for v in principal.values())
    return isinstance(principal, list) and "*" in principal


def _wildcard_action(action: Any) -> bool:
    return any(isinstance(a, str) and (a == "*" or a.endswith(":*")) for a in _as_list(action))


def _policy_findings(path: str, statements: Any) -> Iterator[str]:
    for statement in _as_list(statements):
        if not isinstance(statement, dict) or statement.get("Effect") == "Deny":
            continue
        if _wildcard_principal(statement.get("Principal")) or "NotPrincipal" in statement:
            yield f"{path}: a policy statement allows any principal ('*')"
        if _wildcard_action(statement.get("Action")) or "NotAction" in statement:
            yield f"{path}: a policy statement allows every action of a service ('*')"


def _open_ingress(rule: dict[str, Any]) -> bool:
    """Ingress from anywhere on something other than exactly TCP 80 or 443."""
    # A reference ({"Fn::GetAtt": ...}) is no open CIDR and cannot go in a set.
    cidrs = {rule.get(k) for k in ("CidrIp", "CidrIpv6", "CidrBlock", "Ipv6CidrBlock") if isinstance(rule.get(k), str)}
    if not OPEN_CIDRS & cidrs:
        return False
    if rule.get("Egress") is True or rule.get("RuleAction", "allow") == "deny":
        return False
    protocol = str(rule.get("IpProtocol", rule.get("Protocol", "-1"))).lower()
    port_range = rule.get("PortRange")
    ports: dict[str, Any] = port_range if isinstance(port_range, dict) else rule
    low, high = _as_int(ports.get("FromPort", ports.get("From"))), _as_int(ports.get("ToPort", ports.get("To")))
    web = protocol in {"tcp", "6"} and low is not None and low == high and low in WEB_PORTS
    return not web


def _ingress_findings(path: str, rules: Any) -> Iterator[str]:
    for rule in _as_list(rules):
        if isinstance(rule, dict) and _open_ingress(rule):
            cidr = rule.get("CidrIp") or rule.get("CidrIpv6") or rule.get("CidrBlock") or rule.get("Ipv6CidrBlock")
            port = rule.get("FromPort", "all")
            yield f"{path}: allows traffic from anywhere ({cidr}) on port {port}, not only 80/443"


def _configuration_findings(type_name: str, key: str, value: Any) -> Iterator[str]:
    """Findings in the declared value of one top-level property."""
    top = f"/{key}"
    if type_name in ("AWS::EC2::SecurityGroupIngress", "AWS::EC2::NetworkAclEntry") and key in (
        "CidrIp",
        "CidrIpv6",
        "CidrBlock",
        "Ipv6CidrBlock",
    ):
        return  # judged on the whole resource, below
    if key == "SecurityGroupIngress":
        yield from _ingress_findings(top, value)
    if key == "AccessControl" and value in _PUBLIC_ACLS:
        yield f"{top}: a public canned ACL ({value})"
    if key == "Principal" and type_name == "AWS::Lambda::Permission" and value == "*":
        yield f"{top}: anyone may invoke the function ('*')"
    for path, inner_key, inner in [(top, key, value), *_walk(value, top)]:
        if inner_key in _PUBLIC_TRUE and _is_true(inner):
            yield f"{path}: {_PUBLIC_TRUE[inner_key]}"
        elif inner_key in _PUBLIC_BLOCK_FLAGS and _is_false(inner):
            yield f"{path}: the S3 public access block is weakened"
        elif inner_key == "Statement":
            yield from _policy_findings(path, inner)
        elif inner_key in _BACKUP_ZERO and _as_int(inner) == 0:
            yield f"{path}: {_BACKUP_ZERO[inner_key]}"
        elif inner_key in _BACKUP_FALSE and _is_false(inner):
            yield f"{path}: {_BACKUP_FALSE[inner_key]}"
        elif inner_key in _LOGGING_FALSE and _is_false(inner):
            yield f"{path}: {_LOGGING_FALSE[inner_key]}"
        elif _ENCRYPTION_KEY.search(inner_key) and _is_false(inner):
            yield f"{path}: encryption is turned off"


def _resource_findings(change: Change) -> Iterator[str]:
    """Rules over a whole resource whose properties are themselves one rule (an ingress entry)."""
    props = change.desired.properties if change.desired is not None else {}
    if change.type == "AWS::EC2::SecurityGroupIngress" and _open_ingress(props):
        yield from _ingress_findings("", [props])
    if change.type == "AWS::EC2::NetworkAclEntry" and not _is_true(props.get("Egress")) and _open_ingress(props):
        yield from _ingress_findings("", [props])


def _top(path: str) -> str:
    segments = pointer_segments(path)
    return segments[0] if segments else ""


def _leaf(path: str) -> str:
    segments = pointer_segments(path)
    return segments[-1] if segments else ""


def _transition_findings(change: Change, pc: PropertyChange) -> Iterator[str]:
    top = _top(pc.path)
    leaf = _leaf(pc.path)
    removed = pc.after is None and pc.before is not None
    if leaf in _PROTECTION_FLAGS and _is_true(pc.before) and (removed or _is_false(pc.after)):
        yield f"{pc.path}: {_PROTECTION_FLAGS[leaf]} is turned off"
    if removed and (top in _ENCRYPTION_CONTAINERS or leaf in _ENCRYPTION_CONTAINERS):
        yield f"{pc.path}: encryption settings are removed"
    if removed and (top in _LOGGING_CONTAINERS or leaf in _LOGGING_CONTAINERS):
        yield f"{pc.path}: logging settings are removed"
    if removed and top == "PublicAccessBlockConfiguration":
        yield f"{pc.path}: the S3 public access block is removed"
    if removed and (leaf in _BACKUP_FALSE or top == "PointInTimeRecoverySpecification"):
        yield f"{pc.path}: point-in-time recovery settings are removed"
    if pc.sensitive and change.action in (Action.UPDATE, Action.REPLACE):
        yield f"{pc.path}: a credential or secret of an existing resource changes"
    if change.action in (Action.UPDATE, Action.REPLACE) and (top in _IAM_BINDINGS or leaf in _IAM_BINDINGS):
        yield f"{pc.path}: the IAM role or permissions of an existing resource change"


def security_findings(change: Change) -> list[str]:
    """Why ``change`` is security-relevant, one sentence each (empty: it is not).

    Deletions are judged by type in ``domain/risk``: removing a resource opens nothing.
    """
    if change.action in (Action.NOOP, Action.DELETE):
        return []
    props = change.desired.properties if change.desired is not None else {}
    touched = set(props) if change.action is Action.CREATE else {_top(pc.path) for pc in change.property_changes}
    found: list[str] = list(_resource_findings(change))
    for key in sorted(touched):
        if key in props:
            found.extend(_configuration_findings(change.type, key, props[key]))
    for pc in change.property_changes:
        found.extend(_transition_findings(change, pc))
    label = f"{change.name} ({change.type})"
    unique = list(dict.fromkeys(found))
    return [f"{label} {finding}" if finding.startswith("/") else f"{label}: {finding}" for finding in unique]

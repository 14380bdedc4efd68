"""How risky each change is, and why, in words a reviewer can weigh.

The rules, in order of precedence:

* deleting or replacing a resource that holds data (:data:`DATA_HOLDING`) is **high**: the data
  goes with it, and no undo brings it back. The type judged is the worse of what exists and what
  is declared: re-declaring a database's name as a VPC still destroys the database;
* anything touching access control, encryption keys or network routing (:data:`SENSITIVE`), and
  any change with a security finding (``domain/security``: public access, wildcards, protection,
  backups, encryption or logging turned off, credentials or IAM bindings changed), is at least
  **medium**, never low: a mistake there opens or closes doors for everything else;
* other deletions and replacements are **medium**: something that exists goes away or gets a new
  identity, and whatever depends on it notices;
* tag-only updates, other updates and creations are **low**.

A plan's risk is its riskiest change's, with the reasons of every change at that level.
"""

from __future__ import annotations

from collections.abc import Iterable

from infra_mcp.domain.plan import Action, Change, RiskLevel
from infra_mcp.domain.policies import snapshot_note
from infra_mcp.domain.security import security_findings

# Types whose deletion destroys data (rows, objects, blocks, messages, images, keys). The value
# says what is lost, so the reason reads "deleting it destroys <what>". Replacement is the same
# loss: the new resource starts empty. KMS keys are here because data encrypted under a deleted
# key can never be decrypted again; secrets because their value is gone.
DATA_HOLDING: dict[str, str] = {
    "AWS::RDS::DBInstance": "the database and, unless a final snapshot is taken, its data",
    "AWS::RDS::DBCluster": "the database cluster and its data",
    "AWS::RDS::GlobalCluster": "the global database",
    "AWS::S3::Bucket": "the bucket and every object in it",
    "AWS::S3Express::DirectoryBucket": "the bucket and every object in it",
    "AWS::EC2::Volume": "the volume and its blocks",
    "AWS::EC2::Instance": "the instance and its instance-store and root-volume data",
    "AWS::EFS::FileSystem": "the file system and its files",
    "AWS::FSx::FileSystem": "the file system and its files",
    "AWS::DynamoDB::Table": "the table and its items",
    "AWS::DynamoDB::GlobalTable": "the global table and its items",
    "AWS::ElastiCache::CacheCluster": "the cache cluster and its data",
    "AWS::ElastiCache::ReplicationGroup": "the replication group and its data",
    "AWS::ElastiCache::ServerlessCache": "the cache and its data",
    "AWS::MemoryDB::Cluster": "the cluster and its data",
    "AWS::Redshift::Cluster": "the warehouse and its data",
    "AWS::RedshiftServerless::Namespace": "the namespace and its data",
    "AWS::OpenSearchService::Domain": "the search domain and its indexes",
    "AWS::Elasticsearch::Domain": "the search domain and its indexes",
    "AWS::DocDB::DBCluster": "the document database and its data",
    "AWS::DocDB::DBInstance": "a document database instance",
    "AWS::Neptune::DBCluster": "the graph database and its data",
    "AWS::Kinesis::Stream": "the stream and its unread records",
    "AWS::KinesisFirehose::DeliveryStream": "the delivery stream and its buffered records",
    "AWS::SQS::Queue": "the queue and its messages",
    "AWS::ECR::Repository": "the repository and its images",
    "AWS::Backup::BackupVault": "the vault and its recovery points",
    "AWS::KMS::Key": "the key, and with it the ability to decrypt anything encrypted under it",
    "AWS::SecretsManager::Secret": "the secret's value",
    "AWS::SSM::Parameter": "the parameter's value",
    "AWS::Logs::LogGroup": "the log group and its log events",
    "AWS::Timestream::Table": "the table and its records",
    "AWS::Glacier::Vault": "the vault and its archives",
    "AWS::QLDB::Ledger": "the ledger and its journal",
    "AWS::Cassandra::Table": "the table and its rows",
}

# Types where a mistake changes who or what can reach what. Exact names, then service prefixes.
SENSITIVE_TYPES: dict[str, str] = {
    "AWS::EC2::SecurityGroup": "security group rules decide what can reach what",
    "AWS::EC2::SecurityGroupIngress": "security group rules decide what can reach what",
    "AWS::EC2::SecurityGroupEgress": "security group rules decide what can reach what",
    "AWS::EC2::RouteTable": "network routing",
    "AWS::EC2::Route": "network routing",
    "AWS::EC2::SubnetRouteTableAssociation": "network routing",
    "AWS::EC2::NatGateway": "network routing (outbound internet access)",
    "AWS::EC2::InternetGateway": "network routing (internet access)",
    "AWS::EC2::VPCGatewayAttachment": "network routing (internet access)",
    "AWS::EC2::TransitGateway": "network routing between networks",
    "AWS::EC2::TransitGatewayAttachment": "network routing between networks",
    "AWS::EC2::TransitGatewayVpcAttachment": "network routing between networks",
    "AWS::EC2::TransitGatewayRoute": "network routing between networks",
    "AWS::EC2::TransitGatewayRouteTable": "network routing between networks",
    "AWS::EC2::VPCPeeringConnection": "network routing between VPCs",
    "AWS::EC2::NetworkAcl": "network access control",
    "AWS::EC2::NetworkAclEntry": "network access control",
    "AWS::EC2::SubnetNetworkAclAssociation": "network access control",
    "AWS::EC2::VPNGateway": "network routing to other networks",
    "AWS::EC2::VPNConnection": "network routing to other networks",
    "AWS::KMS::Key": "encryption keys",
    "AWS::KMS::Alias": "encryption keys",
    "AWS::S3::BucketPolicy": "who can read and write a bucket",
    "AWS::Lambda::Permission": "who can invoke a function",
    "AWS::SecretsManager::Secret": "secrets",
}
SENSITIVE_SERVICES: dict[str, str] = {
    "AWS::IAM::": "IAM permissions decide who can do what",
    "AWS::SSO::": "single sign-on permissions",
    "AWS::Organizations::": "organisation-wide controls",
    "AWS::Cognito::": "user authentication",
}


def sensitivity(type_name: str) -> str | None:
    """Why a type is security- or routing-sensitive, or None."""
    found = SENSITIVE_TYPES.get(type_name)
    if found:
        return found
    return next((why for prefix, why in SENSITIVE_SERVICES.items() if type_name.startswith(prefix)), None)


def _tag_only(change: Change) -> bool:
    return bool(change.property_changes) and all(
        pc.path.startswith("/Tags/") or pc.path == "/Tags" for pc in change.property_changes
    )


def data_held(change: Change) -> str | None:
    """What is lost if ``change`` destroys its resource: judged on the existing and the declared type."""
    for type_name in (change.previous_type, change.type):
        if type_name and type_name in DATA_HOLDING:
            return DATA_HOLDING[type_name]
    return None


def destroys_data(change: Change) -> bool:
    """True for a delete or replace of something that holds data (never auto-approved)."""
    return change.action in (Action.DELETE, Action.REPLACE) and data_held(change) is not None


def _sensitivity(change: Change) -> str | None:
    for type_name in (change.previous_type, change.type):
        found = sensitivity(type_name) if type_name else None
        if found:
            return found
    return None


def _label(change: Change) -> str:
    if change.previous_type and change.previous_type != change.type:
        return f"{change.name} ({change.previous_type}, re-declared as {change.type})"
    return f"{change.name} ({change.type})"


def assess(change: Change, security: list[str] | None = None) -> tuple[RiskLevel, list[str]]:
    """The risk of one change and the reasons for it.

    Args:
        change: The change.
        security: Its security findings (computed here when not given).
    """
    action = change.action
    if action is Action.NOOP:
        return RiskLevel.LOW, []
    security = security_findings(change) if security is None else security
    data = data_held(change)
    sensitive = _sensitivity(change)
    label = _label(change)

    if action is Action.DELETE and change.retained:
        return RiskLevel.LOW, [f"{label} is left in place (DeletionPolicy Retain) and only dropped from state"]
    if action is Action.REPLACE and change.retained:
        level, reasons = _base(change, action, label, sensitive)
        kept = f"the old {change.name} is left in place (UpdateReplacePolicy Retain) and only dropped from state"
        if change.replacement_strategy == "delete_before_create":
            # Nothing deletes the old one, so its fixed name is still taken when the new one is created.
            kept += "; it keeps its fixed name, so creating the new one is likely to fail"
            level = RiskLevel.HIGH
        return level, [*security, kept, *reasons]
    if action in (Action.DELETE, Action.REPLACE) and change.snapshot is not None:
        policy = "DeletionPolicy" if action is Action.DELETE else "UpdateReplacePolicy"
        note = snapshot_note(policy, change.snapshot, change.previous_type or change.type)
        level, reasons = _base(change, action, label, sensitive)
        if data:
            verb = "deleting" if action is Action.DELETE else "replacing"
            level, reasons = RiskLevel.HIGH, [f"{verb} {label} destroys {data}", *reasons]
        if change.snapshot == "not_taken":
            level = RiskLevel.HIGH  # the template asked for a snapshot that will not exist
        return level, [note, *reasons, *security]

    if action in (Action.DELETE, Action.REPLACE) and data:
        verb = "deleting" if action is Action.DELETE else "replacing"
        reasons = [f"{verb} {label} destroys {data}"]
        if action is Action.REPLACE and change.replacement_reasons:
            reasons.append(f"{change.name} is replaced because {'; '.join(change.replacement_reasons)}")
        return RiskLevel.HIGH, [*reasons, *security]

    if security:
        level, reasons = _base(change, action, label, sensitive)
        return max(level, RiskLevel.MEDIUM, key=lambda r: r.rank), [*security, *reasons]
    return _base(change, action, label, sensitive)


def _base(change: Change, action: Action, label: str, sensitive: str | None) -> tuple[RiskLevel, list[str]]:
    if action is Action.UPDATE and _tag_only(change):
        if change.type.startswith("AWS::IAM::"):
            # IAM tags can grant access (attribute-based access control), so they are not cosmetic.
            return RiskLevel.MEDIUM, [f"{label}: tags only, but IAM tags can change access (ABAC)"]
        return RiskLevel.LOW, [f"{label}: tags only"]

    if sensitive:
        return RiskLevel.MEDIUM, [f"{action.value} of {label}: {sensitive}"]

    if action is Action.DELETE:
        return RiskLevel.MEDIUM, [f"deleting {label}: anything using it stops working"]
    if action is Action.REPLACE:
        why = "; ".join(change.replacement_reasons) or "replacement"
        gap = (
            " (deleted before its replacement exists: expect an interruption)"
            if change.replacement_strategy == "delete_before_create"
            else ""
        )
        return RiskLevel.MEDIUM, [f"replacing {label} gives it a new identity{gap}: {why}"]
    if action is Action.UPDATE and change.interruptions:
        return RiskLevel.MEDIUM, [f"in-place update of {label} interrupts it: {'; '.join(change.interruptions)}"]
    if action is Action.UPDATE:
        return RiskLevel.LOW, [f"in-place update of {label}"]
    return RiskLevel.LOW, [f"creating {label}"]


def with_risk(change: Change) -> Change:
    security = security_findings(change)
    level, reasons = assess(change, security)
    return change.model_copy(update={"risk": level, "risk_reasons": reasons, "security_findings": security})


def plan_risk(changes: Iterable[Change]) -> tuple[RiskLevel, list[str]]:
    """The plan's risk: its riskiest change's level, with the reasons of every change at that level."""
    level = RiskLevel.LOW
    reasons: list[str] = []
    for change in changes:
        if change.action is Action.NOOP:
            continue
        if change.risk.rank > level.rank:
            level, reasons = change.risk, list(change.risk_reasons)
        elif change.risk is level:
            reasons.extend(change.risk_reasons)
    if level is RiskLevel.LOW and len(reasons) > 20:
        reasons = [*reasons[:20], f"... and {len(reasons) - 20} more low-risk change(s)"]
    elif len(reasons) > 50:
        reasons = [*reasons[:50], f"... and {len(reasons) - 50} more"]
    return level, reasons

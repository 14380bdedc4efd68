"""What CloudFormation's "Update requires" says where the registry schemas do not.

Schemas list ``conditionalCreateOnlyProperties``: properties whose change replaces the resource in
some cases. Where CloudFormation's documentation says a change of one of them does *not* replace
the resource but interrupts it (an EC2 instance type change stops and starts the instance), it is
listed here with the interruption, and planned as an in-place update that names it. Every other
conditional create-only property is planned as a replacement, the safe side.

Some plain updates interrupt too (an RDS instance class change reboots the database); they are
listed here as well, so the plan names the interruption.
"""

from __future__ import annotations

from collections.abc import Iterable

_STOP_START = "the instance is stopped and started (EBS-backed) for this change"
_REBOOT = "the database instance reboots (or fails over, if Multi-AZ) to apply this change"

INTERRUPTIONS: dict[str, dict[str, str]] = {
    "AWS::EC2::Instance": {
        "InstanceType": _STOP_START,
        "UserData": _STOP_START,
        "EbsOptimized": _STOP_START,
        "KernelId": _STOP_START,
        "RamdiskId": _STOP_START,
        "Tenancy": _STOP_START,
        "AdditionalInfo": _STOP_START,
        "PrivateDnsNameOptions": _STOP_START,
        "Affinity": _STOP_START,
        "HostId": _STOP_START,
        "SecurityGroupIds": "security groups of a VPC instance change in place; no replacement",
    },
    "AWS::RDS::DBInstance": {
        "DBInstanceClass": _REBOOT,
        "EngineVersion": _REBOOT,
        "DBParameterGroupName": "the new parameter group applies after the instance reboots",
        "BackupRetentionPeriod": "changing between 0 and a positive period restarts the instance",
        "AutoMinorVersionUpgrade": "",
        "MultiAZ": "",
        "PreferredMaintenanceWindow": "",
        "AllocatedStorage": "",
        "StorageType": "storage optimisation runs; performance may degrade until it ends",
    },
    "AWS::RDS::DBCluster": {
        "EngineVersion": "the cluster's instances restart on the new engine version",
    },
    "AWS::ElastiCache::CacheCluster": {
        "CacheNodeType": "nodes are replaced one by one; expect brief interruptions",
    },
    "AWS::OpenSearchService::Domain": {
        "ClusterConfig": "a blue/green deployment runs; the domain stays available but slower",
    },
}


def in_place(type_name: str, prop: str) -> bool:
    """Whether CloudFormation documents a change of ``prop`` as an update (perhaps interrupting), not a replacement."""
    return prop in INTERRUPTIONS.get(type_name, {})


def interruptions(type_name: str, changed: Iterable[str]) -> list[str]:
    """The interruptions an in-place update of the ``changed`` top-level properties causes."""
    table = INTERRUPTIONS.get(type_name)
    if not table:
        return []
    return [f"{prop}: {table[prop]}" for prop in dict.fromkeys(changed) if table.get(prop)]

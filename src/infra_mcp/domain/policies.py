"""What a Snapshot policy (DeletionPolicy or UpdateReplacePolicy) does when Cloud Control deletes.

CloudFormation tells a resource handler that a snapshot was asked for (``snapshotRequested``)
from the template's policy; Cloud Control's DeleteResource has no such flag. Only handlers that
take a final snapshot when the flag is absent honour the policy here. The RDS DB instance handler
does (it treats "not said" as CloudFormation's default, a final snapshot), except for read
replicas and cluster members, which RDS cannot snapshot on delete. For every other type infra-mcp
cannot say a snapshot is taken, so the plan says none is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

SnapshotOutcome = Literal["final_snapshot", "not_taken"]

# Declared properties that make an RDS DB instance one RDS will not snapshot on delete.
_NO_FINAL_SNAPSHOT = ("SourceDBInstanceIdentifier", "SourceDBClusterIdentifier", "DBClusterIdentifier")


def snapshot_on_delete(type_name: str, declared: Mapping[str, Any]) -> SnapshotOutcome:
    """Whether deleting a resource of ``type_name`` through Cloud Control leaves a final snapshot."""
    if type_name == "AWS::RDS::DBInstance" and not any(declared.get(p) for p in _NO_FINAL_SNAPSHOT):
        return "final_snapshot"
    return "not_taken"


def snapshot_note(policy: str, outcome: SnapshotOutcome) -> str:
    """The plan's sentence for a Snapshot policy on a deletion (``policy`` names which one)."""
    if outcome == "final_snapshot":
        return f"{policy} Snapshot: Cloud Control's delete takes a final snapshot first"
    return (
        f"{policy} Snapshot: Cloud Control takes no snapshot of this type on delete and infra-mcp takes "
        "no snapshot; take one yourself before approving"
    )

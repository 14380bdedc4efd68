"""What a Snapshot policy (DeletionPolicy or UpdateReplacePolicy) does when Cloud Control deletes.

CloudFormation documents Snapshot for these types: ``AWS::EC2::Volume``,
``AWS::ElastiCache::CacheCluster``, ``AWS::ElastiCache::ReplicationGroup``, ``AWS::Neptune::DBCluster``,
``AWS::RDS::DBCluster``, ``AWS::RDS::DBInstance``, ``AWS::Redshift::Cluster`` and
``AWS::DocDB::DBCluster``. It tells the type's delete handler that a snapshot was asked for
(``snapshotRequested``); Cloud Control's DeleteResource has no such flag, so each type is decided
from its handler and from what Cloud Control can create:

* ``final_snapshot``: the delete itself takes one. The RDS DB instance handler treats "not said"
  as CloudFormation's default, a final snapshot, except for read replicas and cluster members,
  which RDS cannot snapshot on delete.
* ``snapshot_first``: the delete handler snapshots only when asked, but the snapshot is a resource
  type Cloud Control creates (``AWS::RDS::ClusterSnapshot``, ``AWS::ElastiCache::Snapshot``,
  ``AWS::Redshift::Snapshot``). Execution creates it, and waits for it, before the delete is sent;
  the delete is not sent if the snapshot fails.
* ``not_taken``: neither. The EBS volume, Neptune and DocumentDB handlers snapshot only when asked
  and Cloud Control has no snapshot type for them; a Memcached cache cluster has no snapshots at
  all. The plan says so and rates the change high, so the reviewer takes one before approving.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

SnapshotOutcome = Literal["final_snapshot", "snapshot_first", "not_taken"]

# Declared properties that make an RDS DB instance one RDS will not snapshot on delete.
_NO_FINAL_SNAPSHOT = ("SourceDBInstanceIdentifier", "SourceDBClusterIdentifier", "DBClusterIdentifier")


@dataclass(frozen=True)
class SnapshotStep:
    """The snapshot resource created through Cloud Control before a ``snapshot_first`` delete.

    Attributes:
        type_name: The snapshot's resource type.
        name_property: Its property naming the snapshot.
        source_property: Its property naming the resource snapshotted (given its physical id).
    """

    type_name: str
    name_property: str
    source_property: str

    def desired_state(self, source_id: str, name: str) -> dict[str, str]:
        return {self.name_property: name, self.source_property: source_id}


_SNAPSHOT_FIRST: dict[str, SnapshotStep] = {
    "AWS::RDS::DBCluster": SnapshotStep(
        "AWS::RDS::ClusterSnapshot", "DBClusterSnapshotIdentifier", "DBClusterIdentifier"
    ),
    "AWS::ElastiCache::ReplicationGroup": SnapshotStep(
        "AWS::ElastiCache::Snapshot", "SnapshotName", "ReplicationGroupId"
    ),
    "AWS::ElastiCache::CacheCluster": SnapshotStep("AWS::ElastiCache::Snapshot", "SnapshotName", "CacheClusterId"),
    "AWS::Redshift::Cluster": SnapshotStep("AWS::Redshift::Snapshot", "SnapshotIdentifier", "ClusterIdentifier"),
}

# Why a type CloudFormation snapshots gets none through Cloud Control (said in the plan).
_NOT_TAKEN_BECAUSE = {
    "AWS::EC2::Volume": "the EBS volume's delete handler snapshots only when CloudFormation asks, and Cloud Control "
    "has no EBS snapshot type to create one first",
    "AWS::Neptune::DBCluster": "the Neptune cluster's delete handler snapshots only when CloudFormation asks, and "
    "Cloud Control has no Neptune snapshot type",
    "AWS::DocDB::DBCluster": "Cloud Control has no handler for DocumentDB clusters' snapshots",
    "AWS::RDS::DBInstance": "RDS takes no final snapshot of a read replica or a cluster member",
    "AWS::ElastiCache::CacheCluster": "Memcached cache clusters have no snapshots",
}


def snapshot_on_delete(type_name: str, declared: Mapping[str, Any]) -> SnapshotOutcome:
    """Whether deleting a resource of ``type_name`` through infra-mcp leaves a snapshot, and how."""
    if type_name == "AWS::RDS::DBInstance":
        return "not_taken" if any(declared.get(p) for p in _NO_FINAL_SNAPSHOT) else "final_snapshot"
    if type_name == "AWS::ElastiCache::CacheCluster" and str(declared.get("Engine", "")).lower() == "memcached":
        return "not_taken"
    return "snapshot_first" if type_name in _SNAPSHOT_FIRST else "not_taken"


def snapshot_step(type_name: str) -> SnapshotStep | None:
    """The snapshot execution creates before deleting a ``snapshot_first`` resource of ``type_name``."""
    return _SNAPSHOT_FIRST.get(type_name)


def snapshot_name(name: str, plan_id: str) -> str:
    """The snapshot's name: from the resource and the plan, valid for every snapshot type above.

    Letters, digits and single hyphens, a letter first, at most 63 characters (the strictest
    rule, RDS's), so one plan's retry finds the same snapshot by name.
    """
    cleaned = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "resource"
    suffix = re.sub(r"[^a-z0-9]+", "", plan_id.lower().removeprefix("plan-"))
    return f"infra-mcp-{cleaned[: 63 - len('infra-mcp-') - len(suffix) - 1].strip('-')}-{suffix}"


def snapshot_note(policy: str, outcome: SnapshotOutcome, type_name: str = "") -> str:
    """The plan's sentence for a Snapshot policy on a deletion (``policy`` names which one)."""
    if outcome == "final_snapshot":
        return f"{policy} Snapshot: Cloud Control's delete takes a final snapshot first"
    step = snapshot_step(type_name)
    if outcome == "snapshot_first" and step is not None:
        return (
            f"{policy} Snapshot: infra-mcp first creates an {step.type_name} (named infra-mcp-<name>-<plan>) "
            "through Cloud Control and deletes only once it exists"
        )
    why = _NOT_TAKEN_BECAUSE.get(type_name, "Cloud Control takes no snapshot of this type on delete")
    return f"{policy} Snapshot: no snapshot can be taken ({why}); take one yourself before approving"

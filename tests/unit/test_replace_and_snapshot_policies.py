"""UpdateReplacePolicy and DeletionPolicy Snapshot: what the plan says will happen, and its risk."""

from __future__ import annotations

import re
from typing import Any

import pytest

from infra_mcp.domain.plan import Action, Change, RiskLevel
from infra_mcp.domain.render import render_change
from tests.unit.plan_builders import applied, plan_for, resources

DB: dict[str, Any] = {
    "name": "Db",
    "type": "AWS::RDS::DBInstance",
    "properties": {"DBInstanceClass": "db.t3.micro", "Engine": "postgres", "AllocatedStorage": "20"},
}
VOLUME: dict[str, Any] = {
    "name": "Data",
    "type": "AWS::EC2::Volume",
    "properties": {"AvailabilityZone": "us-east-1a", "Size": 10},
}


def _deleted(entry: dict[str, Any], policy: str) -> Change:
    current = applied(resources(entry))
    current.resources[0].deletion_policy = policy
    change = plan_for([], current).change(entry["name"])
    assert change is not None
    assert change.action is Action.DELETE
    return change


def _replaced(entry: dict[str, Any], changed: dict[str, Any], policy: str) -> Change:
    current = applied(resources(entry))
    [spec] = resources({**entry, "properties": {**entry["properties"], **changed}})
    change = plan_for([spec.model_copy(update={"replace_policy": policy})], current).change(entry["name"])
    assert change is not None
    assert change.action is Action.REPLACE
    return change


def test_deleting_a_standalone_db_instance_under_snapshot_says_cloud_control_takes_a_final_snapshot() -> None:
    change = _deleted(DB, "Snapshot")
    assert change.snapshot == "final_snapshot"
    assert any("final snapshot" in line for line in render_change(change))
    assert any("final snapshot" in reason for reason in change.risk_reasons)


def test_deleting_a_read_replica_under_snapshot_says_no_snapshot_is_taken_and_rates_it_high() -> None:
    replica = {**DB, "properties": {"DBInstanceClass": "db.t3.micro", "SourceDBInstanceIdentifier": "primary"}}
    change = _deleted(replica, "Snapshot")
    assert change.snapshot == "not_taken"
    assert change.risk is RiskLevel.HIGH


def test_deleting_a_volume_under_snapshot_says_no_snapshot_is_taken_and_rates_it_high() -> None:
    change = _deleted(VOLUME, "Snapshot")
    assert change.snapshot == "not_taken"
    assert change.risk is RiskLevel.HIGH
    assert any("no snapshot" in line for line in render_change(change))


def test_a_delete_without_a_snapshot_policy_says_nothing_about_snapshots() -> None:
    current = applied(resources(VOLUME))
    change = plan_for([], current).change("Data")
    assert change is not None
    assert change.snapshot is None


def test_a_replacement_under_update_replace_policy_retain_leaves_the_old_one_in_place() -> None:
    change = _replaced(DB, {"DBName": "orders"}, "Retain")
    assert change.retained is True
    assert change.snapshot is None
    assert any("UpdateReplacePolicy Retain" in line for line in render_change(change))
    assert any("left in place" in reason for reason in change.risk_reasons)


def test_a_replacement_under_update_replace_policy_snapshot_says_what_happens_to_the_old_one() -> None:
    change = _replaced(DB, {"DBName": "orders"}, "Snapshot")
    assert change.retained is False
    assert change.snapshot == "final_snapshot"
    assert change.risk is RiskLevel.HIGH  # replacing a database still destroys its data in place
    assert any("UpdateReplacePolicy Snapshot" in line for line in render_change(change))


@pytest.mark.parametrize(
    ("entry", "outcome", "said"),
    [
        (DB, "final_snapshot", "Cloud Control's delete takes a final snapshot"),
        (
            {"name": "Cluster", "type": "AWS::RDS::DBCluster", "properties": {"Engine": "aurora-postgresql"}},
            "snapshot_first",
            "creates an AWS::RDS::ClusterSnapshot",
        ),
        (
            {
                "name": "Cache",
                "type": "AWS::ElastiCache::CacheCluster",
                "properties": {"Engine": "redis", "CacheNodeType": "cache.t3.micro", "NumCacheNodes": 1},
            },
            "snapshot_first",
            "creates an AWS::ElastiCache::Snapshot",
        ),
        (
            {
                "name": "Cache",
                "type": "AWS::ElastiCache::CacheCluster",
                "properties": {"Engine": "memcached", "CacheNodeType": "cache.t3.micro", "NumCacheNodes": 1},
            },
            "not_taken",
            "Memcached cache clusters have no snapshots",
        ),
        (
            {
                "name": "Group",
                "type": "AWS::ElastiCache::ReplicationGroup",
                "properties": {"ReplicationGroupDescription": "sessions"},
            },
            "snapshot_first",
            "creates an AWS::ElastiCache::Snapshot",
        ),
        (
            {
                "name": "Warehouse",
                "type": "AWS::Redshift::Cluster",
                "properties": {"ClusterType": "single-node", "NodeType": "ra3.large", "DBName": "dw"},
            },
            "snapshot_first",
            "creates an AWS::Redshift::Snapshot",
        ),
        (VOLUME, "not_taken", "Cloud Control has no EBS snapshot type"),
        (
            {"name": "Graph", "type": "AWS::Neptune::DBCluster", "properties": {}},
            "not_taken",
            "Cloud Control has no Neptune snapshot type",
        ),
        (
            {"name": "Docs", "type": "AWS::DocDB::DBCluster", "properties": {"MasterUsername": "app"}},
            "not_taken",
            "no handler for DocumentDB",
        ),
        (
            {**DB, "properties": {"DBInstanceClass": "db.t3.micro", "SourceDBInstanceIdentifier": "primary"}},
            "not_taken",
            "no final snapshot of a read replica",
        ),
        (
            {"name": "Queue", "type": "AWS::SQS::Queue", "properties": {}},
            "not_taken",
            "Cloud Control takes no snapshot of this type",
        ),
    ],
    ids=lambda v: (
        v["type"] + ("/" + v["properties"].get("Engine", "") if v.get("properties") else "")
        if isinstance(v, dict)
        else None
    ),
)
def test_each_kind_of_snapshot_policy_says_how_the_snapshot_is_taken_or_why_it_cannot_be(
    entry: dict[str, Any], outcome: str, said: str
) -> None:
    change = _deleted(entry, "Snapshot")
    assert change.snapshot == outcome
    assert any(said in line for line in render_change(change)), render_change(change)
    assert any(said in reason for reason in change.risk_reasons)  # the approver is told too
    if outcome == "not_taken":
        assert change.risk is RiskLevel.HIGH
        assert any("take one yourself" in reason for reason in change.risk_reasons)


def test_a_snapshot_name_is_valid_for_every_snapshot_type_and_the_same_for_one_plan() -> None:
    from infra_mcp.domain.policies import snapshot_name

    name = snapshot_name("Orders_DB--primary" * 5, "plan-0123456789ab")
    assert re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", name)
    assert len(name) <= 63
    assert name.endswith("-0123456789ab")
    assert name == snapshot_name("Orders_DB--primary" * 5, "plan-0123456789ab")

"""UpdateReplacePolicy and DeletionPolicy Snapshot: what the plan says will happen, and its risk."""

from __future__ import annotations

from typing import Any

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

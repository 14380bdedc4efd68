"""Desired vs current: actions, per-property paths, replacement reasons, unknowns and secrets."""

from __future__ import annotations

from typing import Any

from infra_mcp.domain.diff import diff_states
from infra_mcp.domain.plan import KNOWN_AFTER_APPLY, SENSITIVE, Action, Change
from infra_mcp.domain.sealed import secret_digest
from infra_mcp.domain.state import StateFile, StateResource
from tests.unit.plan_builders import LINEAGE, applied, catalog, resources, subnet, vpc


def _diff(entries: list[dict[str, Any]], current: StateFile | None, *, full: bool = True) -> dict[str, Change]:
    specs = resources(*entries)
    return {c.name: c for c in diff_states(specs, current, catalog(), full=full)}


def _paths(change: Change) -> dict[str, tuple[Any, Any]]:
    return {pc.path: (pc.before, pc.after) for pc in change.property_changes}


def test_a_new_resource_is_created_with_every_declared_property() -> None:
    change = _diff([vpc(tags={"Env": "dev"})], None)["web-vpc"]
    assert change.action is Action.CREATE
    assert _paths(change) == {"/CidrBlock": (None, "10.0.0.0/16"), "/Tags/Env": (None, "dev")}


def test_an_unchanged_resource_is_a_no_op() -> None:
    state = applied(resources(vpc(), subnet()))
    changes = _diff([vpc(), subnet()], state)
    assert {c.action for c in changes.values()} == {Action.NOOP}


def test_aws_filled_defaults_do_not_show_as_changes() -> None:
    reported = {"web-vpc": {"VpcId": "vpc-1", "EnableDnsSupport": True, "InstanceTenancy": "default"}}
    state = applied(resources(vpc()), reported=reported)
    assert _diff([vpc()], state)["web-vpc"].action is Action.NOOP


def test_a_resource_absent_from_a_full_desired_state_is_deleted() -> None:
    state = applied(resources(vpc(), vpc("old", "10.9.0.0/16")))
    change = _diff([vpc()], state)["old"]
    assert change.action is Action.DELETE
    assert change.physical_id == "phys-1"
    assert _paths(change) == {"/CidrBlock": ("10.9.0.0/16", None)}


def test_a_partial_desired_state_deletes_nothing() -> None:
    state = applied(resources(vpc(), vpc("old", "10.9.0.0/16")))
    assert "old" not in _diff([vpc()], state, full=False)


def test_changing_a_create_only_property_replaces_and_names_it() -> None:
    state = applied(resources(vpc()))
    change = _diff([vpc(cidr="10.1.0.0/16")], state)["web-vpc"]
    assert change.action is Action.REPLACE
    assert change.replacement_reasons == ["CidrBlock (create-only: changing it forces replacement)"]
    assert change.replacement_strategy == "create_before_delete"
    (pc,) = change.property_changes
    assert (pc.path, pc.before, pc.after, pc.requires_replacement) == ("/CidrBlock", "10.0.0.0/16", "10.1.0.0/16", True)


def test_changing_an_updatable_property_is_an_in_place_update() -> None:
    entry = {**vpc(), "properties": {"CidrBlock": "10.0.0.0/16", "EnableDnsHostnames": False}}
    state = applied(resources(entry))
    entry["properties"]["EnableDnsHostnames"] = True
    change = _diff([entry], state)["web-vpc"]
    assert change.action is Action.UPDATE
    assert _paths(change) == {"/EnableDnsHostnames": (False, True)}
    assert change.replacement_reasons == []


def _fleet(unit: str, total: int) -> dict[str, Any]:
    return {
        "name": "fleet",
        "type": "AWS::EC2::EC2Fleet",
        "properties": {
            "LaunchTemplateConfigs": [{"LaunchTemplateSpecification": {"LaunchTemplateId": "lt-1", "Version": "1"}}],
            "TargetCapacitySpecification": {"TotalTargetCapacity": total, "TargetCapacityUnitType": unit},
        },
    }


def test_a_nested_create_only_property_forces_replacement_and_a_sibling_does_not() -> None:
    state = applied(resources(_fleet("units", 2)))
    resized = _diff([_fleet("units", 3)], state)["fleet"]
    assert resized.action is Action.UPDATE
    assert _paths(resized) == {"/TargetCapacitySpecification/TotalTargetCapacity": (2, 3)}
    retyped = _diff([_fleet("vcpu", 2)], state)["fleet"]
    assert retyped.action is Action.REPLACE
    assert retyped.replacement_reasons[0].startswith("TargetCapacitySpecification/TargetCapacityUnitType (create-only")


def test_a_fixed_user_given_name_makes_replacement_delete_before_create() -> None:
    bucket = {
        "name": "assets",
        "type": "AWS::S3::Bucket",
        "properties": {"BucketName": "acme-assets", "BucketNamespace": "account-regional"},
    }
    state = applied(resources(bucket))
    changed = {**bucket, "properties": {"BucketName": "acme-assets", "BucketNamespace": "global"}}
    change = _diff([changed], state)["assets"]
    assert change.action is Action.REPLACE
    assert change.replacement_strategy == "delete_before_create"


def test_a_renamed_fixed_name_lets_the_new_one_be_created_first() -> None:
    bucket = {"name": "assets", "type": "AWS::S3::Bucket", "properties": {"BucketName": "acme-assets"}}
    state = applied(resources(bucket))
    change = _diff([{**bucket, "properties": {"BucketName": "acme-assets-2"}}], state)["assets"]
    assert change.action is Action.REPLACE
    assert change.replacement_strategy == "create_before_delete"


def test_a_type_change_is_a_replace() -> None:
    state = applied(resources({"name": "q", "type": "AWS::SQS::Queue", "properties": {}}))
    change = _diff([{"name": "q", "type": "AWS::SNS::Topic", "properties": {}}], state)["q"]
    assert change.action is Action.REPLACE
    assert "type changes from AWS::SQS::Queue to AWS::SNS::Topic" in change.replacement_reasons[0]


def test_values_referring_to_a_resource_being_created_are_known_after_apply() -> None:
    change = _diff([vpc(), subnet()], None)["web-subnet"]
    vpc_id = next(pc for pc in change.property_changes if pc.path == "/VpcId")
    assert vpc_id.after == KNOWN_AFTER_APPLY
    assert vpc_id.known_after_apply is True


def test_references_to_existing_resources_show_their_current_value() -> None:
    state = applied(resources(vpc()))
    change = _diff([vpc(), subnet()], state)["web-subnet"]
    assert _paths(change)["/VpcId"] == (None, "phys-0")


def test_replacing_a_resource_cascades_to_create_only_references() -> None:
    state = applied(resources(vpc(), subnet()))
    changes = _diff([vpc(cidr="10.1.0.0/16"), subnet(cidr="10.1.1.0/24")], state)
    child = changes["web-subnet"]
    assert child.action is Action.REPLACE
    vpc_id = next(pc for pc in child.property_changes if pc.path == "/VpcId")
    assert (vpc_id.before, vpc_id.after, vpc_id.requires_replacement) == ("phys-0", KNOWN_AFTER_APPLY, True)
    assert any("web-vpc" in reason for reason in child.replacement_reasons)


def test_ordered_lists_and_nested_objects_are_diffed_per_path() -> None:
    # LifecycleConfiguration/Rules is an ordered list (no insertionOrder: false in the schema).
    def bucket(days: int, extra: bool) -> dict[str, Any]:
        rules: list[dict[str, Any]] = [{"Id": "expire", "Status": "Enabled", "ExpirationInDays": days}]
        if extra:
            rules.append({"Id": "tmp", "Status": "Enabled", "Prefix": "tmp/", "ExpirationInDays": 1})
        return {
            "name": "b",
            "type": "AWS::S3::Bucket",
            "properties": {"LifecycleConfiguration": {"Rules": rules}},
        }

    state = applied(resources(bucket(30, False)))
    change = _diff([bucket(60, True)], state)["b"]
    assert change.action is Action.UPDATE
    paths = _paths(change)
    assert paths["/LifecycleConfiguration/Rules/0/ExpirationInDays"] == (30, 60)
    assert paths["/LifecycleConfiguration/Rules/1"][0] is None


def test_tag_changes_show_under_tags_with_their_key() -> None:
    state = applied(resources(vpc(tags={"Env": "dev", "Old": "x"})))
    change = _diff([vpc(tags={"Env": "prod", "New": "y"})], state)["web-vpc"]
    assert change.action is Action.UPDATE
    assert _paths(change) == {"/Tags/Env": ("dev", "prod"), "/Tags/New": (None, "y"), "/Tags/Old": ("x", None)}


def _db(password: Any) -> dict[str, Any]:
    return {
        "name": "db",
        "type": "AWS::RDS::DBInstance",
        "properties": {"Engine": "postgres", "DBInstanceClass": "db.t3.micro", "MasterUserPassword": password},
    }


def _sealed(value: str) -> dict[str, str]:
    return {"__sealed__": "opaque-token", "sha256": secret_digest(value)}


def test_a_changed_secret_is_detected_by_digest_and_shown_only_as_sensitive() -> None:
    state = applied(resources(_db(_sealed("old-password"))))
    change = _diff([_db(_sealed("new-password"))], state)["db"]
    assert change.action is Action.UPDATE
    (pc,) = change.property_changes
    assert (pc.path, pc.before, pc.after, pc.sensitive) == ("/MasterUserPassword", SENSITIVE, SENSITIVE, True)


def test_an_unchanged_secret_is_not_a_change_even_in_clear() -> None:
    state = applied(resources(_db(_sealed("same"))))
    assert _diff([_db(_sealed("same"))], state)["db"].action is Action.NOOP
    assert _diff([_db("same")], state)["db"].action is Action.NOOP


def test_a_write_only_value_on_create_is_shown_only_as_sensitive() -> None:
    change = _diff([_db("hunter2")], None)["db"]
    assert "hunter2" not in change.model_dump_json(exclude={"desired"})
    assert _paths(change)["/MasterUserPassword"] == (None, SENSITIVE)


def test_a_resource_without_a_declared_record_is_compared_on_the_named_properties_only() -> None:
    imported = StateResource(
        id="vpc-9",
        name="web-vpc",
        type="AWS::EC2::VPC",
        properties={"CidrBlock": "10.0.0.0/16", "EnableDnsSupport": True, "VpcId": "vpc-9"},
    )
    state = StateFile(project_id="web", serial=1, lineage=LINEAGE, resources=[imported])
    assert _diff([vpc()], state)["web-vpc"].action is Action.NOOP


def test_a_secret_field_inside_a_list_item_is_hidden_and_its_siblings_shown() -> None:
    user = {"Username": "admin", "Password": "hunter2-secret-pass"}
    entry = {
        "name": "mq",
        "type": "AWS::AmazonMQ::Broker",
        "properties": {"BrokerName": "b", "Users": [user]},
    }
    change = _diff([entry], None)["mq"]
    assert "hunter2-secret-pass" not in change.model_dump_json(exclude={"desired"})
    shown = _paths(change)["/Users"][1]
    assert shown[0]["Username"] == "admin"
    assert shown[0]["Password"] == SENSITIVE


def test_a_write_only_value_that_is_no_secret_is_shown_to_the_reviewer() -> None:
    rule = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "SourceSecurityGroupName": "bastion"}
    entry = {
        "name": "sg",
        "type": "AWS::EC2::SecurityGroup",
        "properties": {"GroupDescription": "x", "SecurityGroupIngress": [rule]},
    }
    change = _diff([entry], None)["sg"]
    assert _paths(change)["/SecurityGroupIngress"][1][0]["SourceSecurityGroupName"] == "bastion"

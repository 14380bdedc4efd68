"""Parsing and validating a desired-state document: every fault found, located, capped and counted."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from infra_mcp.domain.desired import MAX_FINDINGS_SHOWN, declared_properties, parse_desired_state
from infra_mcp.domain.plan import ResourceSpec
from infra_mcp.domain.sealed import DIGEST_KEY, secret_digest
from infra_mcp.errors import ValidationFailed
from tests.unit.plan_builders import catalog, subnet, vpc


def _findings(document: Any, **kw: Any) -> list[dict[str, Any]]:
    with pytest.raises(ValidationFailed) as caught:
        parse_desired_state(document, catalog(), **kw)
    assert caught.value.code == "VALIDATION_001"
    return list(caught.value.details["findings"])


def _rules_at(document: Any) -> set[tuple[str, str]]:
    return {(f["rule"], f["path"]) for f in _findings(document)}


def test_shorthand_types_are_normalised() -> None:
    specs = parse_desired_state({"resources": [{"name": "v", "type": "EC2::VPC"}]}, catalog())
    assert specs[0].type == "AWS::EC2::VPC"
    assert specs[0].region == "us-east-1"


def test_a_document_that_is_not_an_object_is_refused() -> None:
    assert _findings([1, 2])[0]["path"] == ""


def test_a_document_without_a_resources_list_is_refused() -> None:
    assert _findings({"resource": []})[0]["path"] == "/resources"
    assert _findings({"resources": {"a": 1}})[0]["path"] == "/resources"


def test_entries_that_are_not_objects_are_reported_with_their_index() -> None:
    assert ("document", "/resources/1") in _rules_at({"resources": [vpc(), "vpc"]})


def test_missing_and_invalid_names_are_reported() -> None:
    found = _rules_at(
        {"resources": [{"type": "AWS::EC2::VPC"}, {"name": "has space", "type": "AWS::EC2::VPC"}, {"name": "x" * 129}]}
    )
    assert {
        ("document", "/resources/0/name"),
        ("document", "/resources/1/name"),
        ("document", "/resources/2/name"),
    } <= found


def test_duplicate_names_are_reported_at_the_second_occurrence() -> None:
    findings = _findings({"resources": [vpc(), vpc()]})
    assert [(f["path"], f["resource"]) for f in findings] == [("/resources/1/name", "web-vpc")]


def test_unknown_types_are_reported_with_the_catalogs_suggestions() -> None:
    (finding,) = _findings({"resources": [{"name": "v", "type": "AWS::EC2::VPCC"}]})
    assert finding["rule"] == "unknown-type"
    assert finding["path"] == "/resources/0/type"
    assert "AWS::EC2::VPC" in finding["message"]


def test_fields_of_the_wrong_shape_are_each_reported() -> None:
    found = _rules_at(
        {
            "resources": [
                {"name": "a", "type": "AWS::EC2::VPC", "properties": []},
                {"name": "b", "type": "AWS::EC2::VPC", "tags": {"Env": 3}},
                {"name": "c", "type": "AWS::EC2::VPC", "region": "mars-1"},
                {"name": "d", "type": "AWS::EC2::VPC", "depends_on": "a"},
                {"name": "e", "type": "AWS::EC2::VPC", "colour": "red"},
            ]
        }
    )
    assert {
        ("document", "/resources/0/properties"),
        ("document", "/resources/1/tags/Env"),
        ("document", "/resources/2/region"),
        ("document", "/resources/3/depends_on"),
        ("document", "/resources/4/colour"),
    } <= found


def test_dangling_references_are_reported_with_their_path() -> None:
    doc = {
        "resources": [
            subnet(vpc_name="nowhere"),
            {**vpc("v2"), "depends_on": ["ghost"]},
            {"name": "sg", "type": "AWS::EC2::SecurityGroup", "properties": {"VpcId": {"Fn::GetAtt": "gone.VpcId"}}},
        ]
    }
    assert {
        ("dangling-ref", "/resources/0/properties/VpcId"),
        ("dangling-ref", "/resources/1/depends_on/0"),
        ("dangling-ref", "/resources/2/properties/VpcId"),
    } == _rules_at(doc)


def test_malformed_references_are_reported() -> None:
    doc = {"resources": [vpc(), {**subnet(), "properties": {"VpcId": {"Fn::GetAtt": ["web-vpc"]}}}]}
    assert ("ref", "/resources/1/properties/VpcId") in _rules_at(doc)


def test_references_may_name_existing_resources_when_the_caller_allows_it() -> None:
    specs = parse_desired_state({"resources": [subnet()]}, catalog(), external_names={"web-vpc"})
    assert specs[0].name == "web-subnet"


def test_refs_getatt_lists_getatt_strings_and_depends_on_all_make_dependencies() -> None:
    specs = parse_desired_state(
        {
            "resources": [
                vpc(),
                subnet(),
                {
                    "name": "sg",
                    "type": "AWS::EC2::SecurityGroup",
                    "properties": {
                        "GroupDescription": "x",
                        "VpcId": {"Fn::GetAtt": ["web-vpc", "VpcId"]},
                        "Tags": [{"Key": "k", "Value": {"Fn::GetAtt": "web-subnet.SubnetId"}}],
                    },
                    "depends_on": ["other"],
                },
                vpc("other", "10.1.0.0/16"),
            ]
        },
        catalog(),
    )
    assert specs.graph == {
        "web-vpc": set(),
        "web-subnet": {"web-vpc"},
        "sg": {"web-vpc", "web-subnet", "other"},
        "other": set(),
    }


def test_cycles_are_reported_naming_the_resources_in_the_cycle() -> None:
    doc = {
        "resources": [
            {**vpc("a"), "depends_on": ["c"]},
            {**vpc("b"), "depends_on": ["a"]},
            {**vpc("c"), "depends_on": ["b"]},
            {**vpc("d"), "depends_on": ["a"]},
        ]
    }
    (finding,) = _findings(doc)
    assert finding["rule"] == "cycle"
    assert all(name in finding["message"] for name in ("a", "b", "c"))
    assert "d" not in finding["message"].split(":")[1].split(".")[0]


def test_every_finding_is_reported_not_only_the_first() -> None:
    doc = {
        "resources": [{"name": "a", "type": "Nope::Nope"}, 7, {"name": "b b", "type": "AWS::EC2::VPC"}, vpc(), vpc()]
    }
    assert len(_findings(doc)) == 4


def test_a_document_with_a_thousand_faults_lists_them_capped_and_counted() -> None:
    entries: list[Any] = [vpc(f"r{i}", f"10.{i % 250}.0.0/16") for i in range(100_000)]
    for i in range(0, 100_000, 100):
        entries[i] = {"name": f"r{i}", "type": "AWS::EC2::Vpcc"} if i % 200 else {"name": f"r{i}", "type": 5}
    started = time.perf_counter()
    with pytest.raises(ValidationFailed) as caught:
        parse_desired_state({"resources": entries}, catalog())
    elapsed = time.perf_counter() - started
    details = caught.value.details
    assert details["total"] == 1000
    assert details["shown"] == MAX_FINDINGS_SHOWN == len(details["findings"])
    assert details["findings"][0]["path"] == "/resources/0/type"
    assert elapsed < 20  # generous: a loaded CI machine; typically ~2 s


def test_a_large_valid_document_is_parsed_not_refused() -> None:
    entries = [
        {**vpc(f"r{i}", f"10.{i % 250}.0.0/16"), "tags": {"Description": "x" * 200, "Team": "platform"}}
        for i in range(25_000)
    ]
    document = {"resources": entries}
    assert len(json.dumps(document)) > 10_000_000 // 2
    assert len(parse_desired_state(document, catalog())) == 25_000


def test_declared_properties_keep_secrets_only_as_digests() -> None:
    sealed = {"__sealed__": "opaque", "sha256": secret_digest("hunter2")}
    spec = ResourceSpec(
        name="db",
        type="AWS::RDS::DBInstance",
        properties={"Engine": "postgres", "MasterUserPassword": sealed},
    )
    assert declared_properties(spec) == {
        "Engine": "postgres",
        "MasterUserPassword": {DIGEST_KEY: secret_digest("hunter2")},
    }


def test_declared_properties_digest_a_write_only_value_left_in_clear() -> None:
    spec = ResourceSpec(name="db", type="AWS::RDS::DBInstance", properties={"MasterUserPassword": "hunter2"})
    declared = declared_properties(spec, catalog())
    assert "hunter2" not in json.dumps(declared)
    assert declared["MasterUserPassword"] == {DIGEST_KEY: secret_digest("hunter2")}


def test_the_fast_path_builds_the_same_spec_the_validated_model_would() -> None:
    entry = {
        "name": "web-subnet",
        "type": "EC2::Subnet",
        "properties": {"VpcId": {"Ref": "web-vpc"}, "CidrBlock": "10.0.1.0/24"},
        "tags": {"Team": "web"},
        "depends_on": ["web-vpc", "web-vpc"],
    }
    [_, fast] = parse_desired_state({"resources": [{"name": "web-vpc", "type": "EC2::VPC"}, entry]}, catalog())
    checked = ResourceSpec.model_validate(
        {**entry, "type": "AWS::EC2::Subnet", "region": "us-east-1", "depends_on": ["web-vpc"]}
    )
    assert fast == checked
    assert fast.model_fields_set == checked.model_fields_set
    assert fast.model_dump(mode="json") == checked.model_dump(mode="json")

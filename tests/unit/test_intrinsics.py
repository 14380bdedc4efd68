"""The intrinsic-function evaluator, one function at a time, against CloudFormation's documented examples."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from infra_mcp.domain.template.intrinsics import (
    NO_VALUE,
    Context,
    TemplateError,
    evaluate,
    evaluate_condition,
    is_symbolic,
    sub_targets,
)

PSEUDO = {
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::StackName": "web",
    "AWS::URLSuffix": "amazonaws.com",
}


def ctx(**kwargs: Any) -> Context:
    kwargs.setdefault("pseudo", PSEUDO)
    kwargs.setdefault("resources", {"MyVPC", "MyBucket", "MyFunction"})
    return Context(**kwargs)


# -- Ref ----------------------------------------------------------------------------------------


def test_ref_to_a_parameter_is_its_value() -> None:
    assert evaluate({"Ref": "Env"}, ctx(parameters={"Env": "prod"})) == "prod"


def test_ref_to_a_pseudo_parameter_is_the_account_or_region() -> None:
    assert evaluate({"Ref": "AWS::AccountId"}, ctx()) == "123456789012"
    assert evaluate({"Ref": "AWS::Region"}, ctx()) == "us-east-1"


def test_ref_to_a_resource_stays_symbolic_until_execution_knows_it() -> None:
    assert evaluate({"Ref": "MyVPC"}, ctx()) == {"Ref": "MyVPC"}
    known = ctx(resource_value=lambda name, attr: "vpc-123" if (name, attr) == ("MyVPC", None) else None)
    assert evaluate({"Ref": "MyVPC"}, known) == "vpc-123"


def test_ref_aws_novalue_removes_the_property_and_the_list_item() -> None:
    assert evaluate({"A": {"Ref": "AWS::NoValue"}, "B": [1, {"Ref": "AWS::NoValue"}]}, ctx()) == {"B": [1]}
    assert evaluate({"Ref": "AWS::NoValue"}, ctx()) is NO_VALUE


def test_ref_to_nothing_is_an_error_located_by_path() -> None:
    with pytest.raises(TemplateError) as caught:
        evaluate({"X": {"Ref": "Nope"}}, ctx(), "/Resources/A/Properties")
    assert caught.value.path == "/Resources/A/Properties/X"


def test_ref_to_a_noecho_parameter_records_where_the_secret_lands() -> None:
    context = ctx(parameters={"Pw": "hunter2"}, secret_parameters=frozenset({"Pw"}))
    evaluate({"MasterUserPassword": {"Ref": "Pw"}}, context, "/R")
    assert context.secret_paths == {"/R/MasterUserPassword"}


# -- Fn::GetAtt ---------------------------------------------------------------------------------


def test_getatt_both_forms_stay_symbolic() -> None:
    assert evaluate({"Fn::GetAtt": ["MyBucket", "Arn"]}, ctx()) == {"Fn::GetAtt": ["MyBucket", "Arn"]}
    assert evaluate({"Fn::GetAtt": "MyBucket.Arn"}, ctx()) == {"Fn::GetAtt": ["MyBucket", "Arn"]}


def test_getatt_attribute_may_be_a_ref_to_a_parameter() -> None:
    context = ctx(parameters={"Attr": "Arn"})
    assert evaluate({"Fn::GetAtt": ["MyBucket", {"Ref": "Attr"}]}, context) == {"Fn::GetAtt": ["MyBucket", "Arn"]}


def test_getatt_of_an_unknown_resource_is_an_error() -> None:
    with pytest.raises(TemplateError):
        evaluate({"Fn::GetAtt": ["Ghost", "Arn"]}, ctx())


# -- Fn::Sub ------------------------------------------------------------------------------------


def test_sub_string_form_substitutes_parameters_and_pseudo_parameters() -> None:
    # From the docs: arn:aws:ec2:${AWS::Region}:${AWS::AccountId}:vpc/${vpc}
    context = ctx(parameters={"vpc": "vpc-1"})
    value = evaluate({"Fn::Sub": "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:vpc/${vpc}"}, context)
    assert value == "arn:aws:ec2:us-east-1:123456789012:vpc/vpc-1"


def test_sub_list_form_uses_its_variable_map() -> None:
    value = evaluate(
        {"Fn::Sub": ["www.${Domain}", {"Domain": {"Ref": "RootDomainName"}}]},
        ctx(parameters={"RootDomainName": "example.com"}),
    )
    assert value == "www.example.com"


def test_sub_escape_is_a_literal_dollar_brace() -> None:
    assert evaluate({"Fn::Sub": "${!Literal}-${AWS::Region}"}, ctx()) == "${Literal}-us-east-1"


def test_sub_over_a_resource_attribute_stays_symbolic_and_resolves_at_execution() -> None:
    value = evaluate({"Fn::Sub": "${MyBucket.Arn}/*"}, ctx())
    assert value == {"Fn::Sub": "${MyBucket.Arn}/*"}
    assert sub_targets(value["Fn::Sub"]) == [("MyBucket", "Arn")]
    at_execution = ctx(resource_value=lambda name, attr: "arn:aws:s3:::b" if attr == "Arn" else None)
    assert evaluate(value, at_execution) == "arn:aws:s3:::b/*"


def test_sub_list_form_keeps_only_the_symbolic_variables() -> None:
    value = evaluate({"Fn::Sub": ["${Id}-${Env}", {"Id": {"Ref": "MyVPC"}, "Env": "dev"}]}, ctx())
    assert value == {"Fn::Sub": ["${Id}-dev", {"Id": {"Ref": "MyVPC"}}]}


def test_sub_of_an_unknown_variable_is_an_error() -> None:
    with pytest.raises(TemplateError):
        evaluate({"Fn::Sub": "${Nothing}"}, ctx())


# -- Fn::Join, Fn::Split, Fn::Select, Fn::Length -------------------------------------------------


def test_join_concatenates_with_the_delimiter() -> None:
    assert evaluate({"Fn::Join": [":", ["a", "b", "c"]]}, ctx()) == "a:b:c"
    assert evaluate({"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::b"]]}, ctx()) == "arn:aws:s3:::b"


def test_join_over_a_resource_stays_symbolic() -> None:
    value = evaluate({"Fn::Join": ["", ["x-", {"Ref": "MyVPC"}]]}, ctx())
    assert value == {"Fn::Join": ["", ["x-", {"Ref": "MyVPC"}]]}
    assert is_symbolic(value)


def test_split_then_select() -> None:
    assert evaluate({"Fn::Split": ["|", "a|b|c"]}, ctx()) == ["a", "b", "c"]
    assert evaluate({"Fn::Select": ["1", {"Fn::Split": [",", "a,b,c"]}]}, ctx()) == "b"


def test_select_out_of_range_is_an_error() -> None:
    with pytest.raises(TemplateError):
        evaluate({"Fn::Select": [3, ["a"]]}, ctx())


def test_length_counts_a_list() -> None:
    assert evaluate({"Fn::Length": [1, 2, 3]}, ctx()) == 3
    assert evaluate({"Fn::Length": {"Ref": "Subnets"}}, ctx(parameters={"Subnets": ["a", "b"]})) == 2


# -- Fn::GetAZs, Fn::Cidr, Fn::FindInMap ---------------------------------------------------------


def test_getazs_of_the_current_region() -> None:
    assert evaluate({"Fn::GetAZs": ""}, ctx()) == ["us-east-1a", "us-east-1b", "us-east-1c"]
    assert evaluate({"Fn::Select": [0, {"Fn::GetAZs": {"Ref": "AWS::Region"}}]}, ctx()) == "us-east-1a"


def test_cidr_counts_host_bits_as_documented() -> None:
    # Docs: !Cidr [ "192.168.0.0/24", 6, 5 ] -> six /27 subnets.
    assert evaluate({"Fn::Cidr": ["192.168.0.0/24", 6, 5]}, ctx()) == [
        "192.168.0.0/27",
        "192.168.0.32/27",
        "192.168.0.64/27",
        "192.168.0.96/27",
        "192.168.0.128/27",
        "192.168.0.160/27",
    ]


def test_cidr_over_a_vpc_attribute_stays_symbolic() -> None:
    value = evaluate({"Fn::Select": [0, {"Fn::Cidr": [{"Fn::GetAtt": ["MyVPC", "CidrBlock"]}, 2, 8]}]}, ctx())
    assert value == {"Fn::Select": [0, {"Fn::Cidr": [{"Fn::GetAtt": ["MyVPC", "CidrBlock"]}, 2, 8]}]}
    later = ctx(resource_value=lambda name, attr: "10.0.0.0/16")
    assert evaluate(value, later) == "10.0.0.0/24"


def test_find_in_map_looks_up_two_levels() -> None:
    mappings = {"RegionMap": {"us-east-1": {"HVM64": "ami-0ff8a91507f77f867"}}}
    value = evaluate({"Fn::FindInMap": ["RegionMap", {"Ref": "AWS::Region"}, "HVM64"]}, ctx(mappings=mappings))
    assert value == "ami-0ff8a91507f77f867"
    with pytest.raises(TemplateError):
        evaluate({"Fn::FindInMap": ["RegionMap", "eu-west-1", "HVM64"]}, ctx(mappings=mappings))


# -- conditions -----------------------------------------------------------------------------------


def test_conditions_equals_and_or_not() -> None:
    conditions = {
        "IsProd": {"Fn::Equals": [{"Ref": "Env"}, "prod"]},
        "IsDev": {"Fn::Not": [{"Condition": "IsProd"}]},
        "Both": {"Fn::And": [{"Condition": "IsProd"}, {"Fn::Equals": ["1", 1]}]},
        "Either": {"Fn::Or": [{"Condition": "IsDev"}, {"Condition": "IsProd"}]},
    }
    context = ctx(parameters={"Env": "prod"}, conditions=conditions)
    assert evaluate_condition("IsProd", context) is True
    assert evaluate_condition("IsDev", context) is False
    assert evaluate_condition("Both", context) is True
    assert evaluate_condition("Either", context) is True


def test_if_picks_a_branch_and_can_remove_the_property() -> None:
    conditions = {"IsProd": {"Fn::Equals": [{"Ref": "Env"}, "prod"]}}
    doc = {
        "Size": {"Fn::If": ["IsProd", "large", "small"]},
        "Iops": {"Fn::If": ["IsProd", 1000, {"Ref": "AWS::NoValue"}]},
    }
    assert evaluate(doc, ctx(parameters={"Env": "dev"}, conditions=conditions)) == {"Size": "small"}
    assert evaluate(doc, ctx(parameters={"Env": "prod"}, conditions=conditions)) == {"Size": "large", "Iops": 1000}


def test_a_condition_cycle_is_an_error() -> None:
    with pytest.raises(TemplateError):
        evaluate_condition("A", ctx(conditions={"A": {"Fn::Not": [{"Condition": "A"}]}}))


def test_a_condition_over_a_resource_is_an_error() -> None:
    with pytest.raises(TemplateError):
        evaluate_condition("A", ctx(conditions={"A": {"Fn::Equals": [{"Ref": "MyVPC"}, "x"]}}))


# -- Fn::Base64, Fn::ToJsonString, refusals ------------------------------------------------------


def test_base64_encodes_the_text() -> None:
    value = evaluate({"Fn::Base64": {"Fn::Sub": "#!/bin/bash\necho ${AWS::Region}"}}, ctx())
    assert base64.b64decode(value).decode() == "#!/bin/bash\necho us-east-1"


def test_base64_of_a_symbolic_value_stays_symbolic() -> None:
    assert evaluate({"Fn::Base64": {"Ref": "MyVPC"}}, ctx()) == {"Fn::Base64": {"Ref": "MyVPC"}}


def test_to_json_string_is_compact_json() -> None:
    assert evaluate({"Fn::ToJsonString": {"a": [1, {"Ref": "Env"}]}}, ctx(parameters={"Env": "x"})) == '{"a":[1,"x"]}'


def test_import_value_and_unknown_functions_are_refused() -> None:
    with pytest.raises(TemplateError, match="ImportValue"):
        evaluate({"Fn::ImportValue": "shared-vpc"}, ctx())
    with pytest.raises(TemplateError):
        evaluate({"Fn::Transmogrify": 1}, ctx())


def test_a_property_named_condition_is_data() -> None:
    assert evaluate({"Condition": {"StringEquals": {"a": "b"}}}, ctx()) == {"Condition": {"StringEquals": {"a": "b"}}}

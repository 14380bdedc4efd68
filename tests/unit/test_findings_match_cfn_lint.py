"""Validation of a template reports no error cfn-lint does not also report on the same template."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra_mcp.domain.coerce import coerce_properties
from infra_mcp.domain.desired import parse_desired_state
from infra_mcp.domain.template.reader import decode_template, read_template
from infra_mcp.domain.typefacts import type_facts
from infra_mcp.domain.validation import validate_specs
from tests.unit.plan_builders import catalog

CORPUS = Path(__file__).parent.parent / "e2e" / "templates"
PSEUDO = {"AWS::Region": "us-east-1", "AWS::AccountId": "000000000000", "AWS::StackName": "web"}

FAULTY = """
Parameters:
  Env: {Type: String, Default: dev}
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub ${Env}-jobs
      DelaySeconds: abc
      QueueNam: typo
  Vpc:
    Type: AWS::EC2::VPC
    Properties:
      CidrBlock: 10.0.0.0/16
      InstanceTenancy: bogus
      EnableDnsSupport: "true"
      Tags: [{Key: n, Value: 1}]
"""


def ours(text: str) -> set[tuple[str, str]]:
    template, problems = decode_template(text)
    assert template is not None, problems
    reading = read_template(template, {}, pseudo=PSEUDO)
    assert [f for f in reading.findings if f.severity == "error"] == []
    specs = parse_desired_state({"resources": reading.resources}, catalog())
    converted = [
        s.model_copy(
            update={"properties": coerce_properties(s.properties, type_facts(catalog(), s.type, s.region).info)}
        )
        for s in specs
    ]
    return {
        (str(f.resource), f.path.removeprefix("/properties"))
        for f in validate_specs(converted, catalog())
        if f.severity == "error"
    }


def cfn_lints(text: str) -> set[tuple[str, str]]:
    from cfnlint.api import ManualArgs, lint

    found = set()
    for match in lint(text, config=ManualArgs(regions=["us-east-1"])):
        path = [str(p) for p in match.path]
        if str(match.rule.id).startswith("E") and len(path) > 1 and path[0] == "Resources":
            rest = path[3:] if len(path) > 2 and path[2] == "Properties" else path[2:]
            found.add((path[1], "".join(f"/{p}" for p in rest)))
    return found


@pytest.mark.parametrize("name", sorted(p.stem for p in CORPUS.glob("*.yaml")))
def test_a_corpus_template_has_no_finding_and_cfn_lint_agrees(name: str) -> None:
    text = (CORPUS / f"{name}.yaml").read_text()
    assert ours(text) == set()
    assert cfn_lints(text) == set()


def test_each_error_on_a_faulty_template_is_one_cfn_lint_reports_too() -> None:
    mine, theirs = ours(FAULTY), cfn_lints(FAULTY)
    assert mine == {("Queue", "/DelaySeconds"), ("Queue", "/QueueNam"), ("Vpc", "/InstanceTenancy")}
    assert mine <= theirs

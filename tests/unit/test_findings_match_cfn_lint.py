"""Validation of a template reports no error cfn-lint does not also report on the same template.

Validation screens with cloudformation-validate first and runs cfn-lint where it finds something
or lacks cfn-lint's rules; these tests hold that screening to losing nothing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from infra_mcp.domain import validation
from infra_mcp.domain.coerce import coerce_properties
from infra_mcp.domain.desired import parse_desired_state
from infra_mcp.domain.plan import ResourceSpec
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


def cfn_lints(text: str, *, our_format: bool = False) -> set[tuple[str, str]]:
    """(resource, path) of cfn-lint's errors on the template.

    ``our_format``: in the one path format findings use, a missing property is located at the
    property; a reference may be located inside the intrinsic function, as cfn-lint does, or at
    the property holding it (where the template reader reports it).
    """
    from cfnlint.api import ManualArgs, lint

    found = set()
    for match in lint(text, config=ManualArgs(regions=["us-east-1"])):
        path = [str(p) for p in match.path]
        if str(match.rule.id).startswith("E") and len(path) > 1 and path[0] == "Resources":
            rest = path[3:] if len(path) > 2 and path[2] == "Properties" else path[2:]
            where = "".join(f"/{p}" for p in rest)
            if our_format:
                # The reader locates a dangling reference at the property holding it.
                found.add((path[1], re.sub(r"(/(Ref|Fn::[A-Za-z]+)(/\d+)?)+$", "", where)))
                missing = re.match(r"^'([^']+)' is a required property", str(match.message))
                if missing:
                    where += "/" + missing.group(1)
            found.add((path[1], where))
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


BROKEN = Path(__file__).parent.parent / "data" / "broken_templates"


def _validated(text: str, *, first_pass: bool, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str, str]]:
    lint = validation.lint_findings

    def chosen(*args: Any, **kwargs: Any) -> Any:
        return lint(*args, **kwargs, first_pass=first_pass)

    with monkeypatch.context() as patch:
        patch.setattr(validation, "lint_findings", chosen)
        return sorted(
            (str(f.resource), f.path, f.rule, f.severity) for f in validation.validate_specs(specs(text), catalog())
        )


def specs(text: str) -> list[ResourceSpec]:
    template, problems = decode_template(text)
    assert template is not None, problems
    reading = read_template(template, {}, pseudo=PSEUDO)
    parsed = parse_desired_state({"resources": reading.resources}, catalog())
    return [
        s.model_copy(
            update={"properties": coerce_properties(s.properties, type_facts(catalog(), s.type, s.region).info)}
        )
        for s in parsed
    ]


@pytest.mark.parametrize(
    "path", sorted([*BROKEN.glob("*.yaml"), *CORPUS.glob("*.yaml")]), ids=lambda p: f"{p.parent.name}/{p.stem}"
)
def test_the_first_pass_loses_no_finding_cfn_lint_makes(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """cloudformation-validate screens; the findings are exactly those of cfn-lint on every resource."""
    text = path.read_text()
    screened = _validated(text, first_pass=True, monkeypatch=monkeypatch)
    assert screened == _validated(text, first_pass=False, monkeypatch=monkeypatch)


@pytest.mark.parametrize("path", sorted(BROKEN.glob("*.yaml")), ids=lambda p: p.stem)
def test_each_error_on_a_broken_template_is_one_cfn_lint_reports_on_the_original(path: Path) -> None:
    """Reading, schema and linting together: every error is one cfn-lint reports, in our path format."""
    text = path.read_text()
    template, _ = decode_template(text)
    reading = read_template(template, {}, pseudo=PSEUDO)
    mine = {
        (parts[2], "/" + "/".join(parts[4:]))
        for f in reading.findings
        if f.severity == "error" and (parts := f.path.split("/"))[1] == "Resources"
    }
    parsed = parse_desired_state({"resources": reading.resources}, catalog())
    converted = [
        s.model_copy(
            update={"properties": coerce_properties(s.properties, type_facts(catalog(), s.type, s.region).info)}
        )
        for s in parsed
    ]
    mine |= {
        (str(f.resource), f.path.removeprefix("/properties"))
        for f in validate_specs(converted, catalog())
        if f.severity == "error"
    }
    assert mine, "every broken template has at least one error"
    assert mine <= cfn_lints(text, our_format=True)


def test_a_resource_of_a_type_only_cfn_lint_has_rules_for_is_linted_though_the_first_pass_finds_nothing() -> None:
    """E3678 (a Lambda ZipFile needs a Runtime) is not among cloudformation-validate's rules."""
    function = ResourceSpec(
        name="fn",
        type="AWS::Lambda::Function",
        region="us-east-1",
        properties={
            "Handler": "index.handler",
            "Role": "arn:aws:iam::123456789012:role/lambda",
            "Code": {"ZipFile": "def handler(e, c): return 1"},
        },
    )
    assert "E3678" in {f.rule for f in validation.validate_specs([function], catalog())}


def test_a_clean_resource_the_first_pass_clears_never_reaches_cfn_lint(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    import cfnlint.runner

    real = cfnlint.runner.run_template_by_data

    def spy(template: Any, *args: Any) -> Any:
        seen.append(template)
        return real(template, *args)

    monkeypatch.setattr(cfnlint.runner, "run_template_by_data", spy)
    logs = ResourceSpec(name="logs", type="AWS::Logs::LogGroup", region="us-east-1", properties={"RetentionInDays": 14})
    assert validation.validate_specs([logs], catalog()) == []
    assert seen == []
    broken = logs.model_copy(update={"properties": {"RetentionInDays": "soon"}})
    assert "E3012" in {f.rule for f in validation.validate_specs([broken], catalog())}
    assert len(seen) == 1


def test_a_cleared_resource_kept_only_as_a_reference_target_reports_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The subnet stays in cfn-lint's template for the instance's sake; its own VPC reference is cut off there."""
    network = [
        ResourceSpec(name="vpc", type="AWS::EC2::VPC", properties={"CidrBlock": "10.0.0.0/16"}),
        ResourceSpec(
            name="subnet",
            type="AWS::EC2::Subnet",
            properties={"VpcId": {"Ref": "vpc"}, "CidrBlock": "10.0.1.0/24"},
        ),
        ResourceSpec(
            name="web",
            type="AWS::EC2::Instance",
            properties={"ImageId": "ami-12345678", "InstanceType": "t3.micro", "SubnetId": {"Ref": "subnet"}},
        ),
    ]
    assert validation.validate_specs(network, catalog()) == []
    text = "Resources:\n" + "".join(
        f"  {s.name}:\n    Type: {s.type}\n    Properties: {json.dumps(s.properties)}\n" for s in network
    )
    assert cfn_lints(text) == set()


def test_without_the_native_first_pass_cfn_lint_checks_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(*_: Any) -> Any:
        raise ImportError("no cloudformation_validate build for this platform")

    monkeypatch.setattr(validation, "_flagged_by_first_pass", missing)
    logs = ResourceSpec(name="logs", type="AWS::Logs::LogGroup", properties={"RetentionInDays": "soon"})
    assert "E3012" in {f.rule for f in validation.validate_specs([logs], catalog())}


@pytest.mark.parametrize(
    "path", sorted([*BROKEN.glob("*.yaml"), *CORPUS.glob("*.yaml")]), ids=lambda p: f"{p.parent.name}/{p.stem}"
)
def test_cfn_lint_with_shared_validator_classes_and_settled_settings_finds_exactly_what_it_finds_alone(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cfnlint.jsonschema.validators as module
    from cfnlint.decode import decode_str
    from cfnlint.runner import run_template_by_data

    config, rules = validation._lint_runner("us-east-1")
    template, _ = decode_str(path.read_text())

    def found() -> list[tuple[str, str, str]]:
        return sorted(
            (str(m.rule.id), str(m.path), str(m.message)) for m in run_template_by_data(template, config, rules)
        )

    shared = found()
    assert getattr(module.create, "shared", False)
    monkeypatch.setattr(module, "create", module.create.original)
    config = config._config  # the settings as cfn-lint computes them on every read
    assert found() == shared

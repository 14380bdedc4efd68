"""cfn-lint beside AWS's cloudformation-validate: what each finds, and what each costs.

Findings, over the e2e template corpus, the bug cases of issue 10 and deliberately broken
templates (``tests/data/broken_templates``: typos, wrong types, bad enum values, missing required
properties, bad references, type-specific rules, out-of-range values):

* ``lint``: cfn-lint's errors and warnings on the original template;
* ``cfv``: cloudformation-validate's (fatal, error and warning) on the same text;
* ``both`` / ``lint only`` / ``cfv only``: matched by resource, property path and rule number;
* ``missed res``: resources cfn-lint flags that cloudformation-validate leaves clean (a
  cfv-only pipeline would lose them);
* ``2-pass == lint``: whether infra-mcp's validation with the first pass (cloudformation-validate
  screens, cfn-lint runs where it flags or lacks rules) reports exactly what it reports with
  cfn-lint on every changed resource.

Speed, each validator warmed up, median of several runs:

* cfn-lint as shipped, and as infra-mcp runs it (validator classes built once per process,
  settings read once);
* one resource per template (the fixed cost per template dominates);
* 100 resources in one template (the cost per resource dominates);
* from the two: the fixed cost per template and the cost per resource;
* infra-mcp's ``validate_specs`` on 1 and 100 changed resources, with and without the first pass.

Run: ``.venv/bin/python benchmarks/validators.py``
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infra_mcp.catalog.registry import Catalog
from infra_mcp.domain import validation
from infra_mcp.domain.coerce import coerce_properties
from infra_mcp.domain.desired import parse_desired_state
from infra_mcp.domain.plan import ResourceSpec
from infra_mcp.domain.template.reader import decode_template, read_template
from infra_mcp.domain.typefacts import type_facts

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "e2e" / "templates"
BROKEN = ROOT / "tests" / "data" / "broken_templates"
PSEUDO = {"AWS::Region": "us-east-1", "AWS::AccountId": "000000000000", "AWS::StackName": "web"}

# Issue 10, bug 2: values CloudFormation converts (no finding expected) beside real faults.
ISSUE_10_BUG_2 = """
Resources:
  Vpc:
    Type: AWS::EC2::VPC
    Properties:
      CidrBlock: 10.0.0.0/16
      EnableDnsSupport: "true"
      Tags: [{Key: n, Value: 1}]
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      DelaySeconds: "100"
      QueueName: 256
      QueueNam: typo
  Volume:
    Type: AWS::EC2::Volume
    Properties:
      AvailabilityZone: us-east-1a
      Size: "20"
      VolumeType: gp9
"""

_INTRINSIC_TAIL = re.compile(r"(/(Ref|Fn::[A-Za-z]+)(/\d+)?)+$")


def templates() -> dict[str, str]:
    found = {f"corpus/{p.stem}": p.read_text() for p in sorted(CORPUS.glob("*.yaml"))}
    found |= {f"broken/{p.stem}": p.read_text() for p in sorted(BROKEN.glob("*.yaml"))}
    found["issue10/bug2"] = ISSUE_10_BUG_2
    return found


def _path(parts: list[str]) -> str:
    rest = parts[3:] if len(parts) > 2 and parts[2] == "Properties" else parts[2:]
    return _INTRINSIC_TAIL.sub("", "".join(f"/{p}" for p in rest))


def cfn_lint_findings(text: str) -> set[tuple[str, str, str]]:
    """(resource, path, rule number) of cfn-lint's errors and warnings on resources."""
    from cfnlint.api import ManualArgs, lint

    found = set()
    for match in lint(text, config=ManualArgs(regions=["us-east-1"])):
        parts = [str(p) for p in match.path]
        if str(match.rule.id)[:1] in "EW" and len(parts) > 1 and parts[0] == "Resources":
            found.add((parts[1], _path(parts), str(match.rule.id)[1:]))
    return found


def cfv_findings(engine: Any, text: str) -> set[tuple[str, str, str]]:
    """(resource, path, rule number) of cloudformation-validate's fatal, error and warning findings."""
    from cloudformation_validate import DetailLevel, Severity, TemplateContent, ValidateConfig

    config = ValidateConfig(detail_level=DetailLevel.STANDARD, severity_level=Severity.WARN)
    found = set()
    for d in engine.validate_template(TemplateContent(text), config).diagnostics:
        if d.entity is None or d.rule_id in validation._ADVICE_ONLY:
            continue
        parts = (d.property_path or "").split(".")
        path = _INTRINSIC_TAIL.sub("", "".join(f"/{p}" for p in parts[1:])) if parts[0] == "Properties" else ""
        found.add((d.entity.logical_id, path, d.rule_id[1:]))
    return found


def specs_of(text: str, catalog: Catalog) -> list[ResourceSpec]:
    """The template as planning sees it: evaluated, parsed, scalars converted as CloudFormation does."""
    template, problems = decode_template(text)
    assert template is not None, problems
    reading = read_template(template, {}, pseudo=PSEUDO)
    specs = parse_desired_state({"resources": reading.resources}, catalog)
    return [
        s.model_copy(update={"properties": coerce_properties(s.properties, type_facts(catalog, s.type, s.region).info)})
        for s in specs
    ]


def pipeline(specs: list[ResourceSpec], catalog: Catalog, *, first_pass: bool) -> list[tuple[str, str, str]]:
    lint = validation.lint_findings

    def chosen(*args: Any, **kwargs: Any) -> Any:
        return lint(*args, **kwargs, first_pass=first_pass)

    validation.lint_findings = chosen  # type: ignore[assignment]
    try:
        return sorted((str(f.resource), f.path, f.rule) for f in validation.validate_specs(specs, catalog))
    finally:
        validation.lint_findings = lint  # type: ignore[assignment]


def findings_table(catalog: Catalog, engine: Any) -> None:
    print("Findings (errors and warnings on resources; matched by resource, path, rule number)")
    print(
        f"{'template':<28} {'lint':>5} {'cfv':>5} {'both':>5} {'lint only':>10} {'cfv only':>9} "
        f"{'missed res':>10} {'2-pass == lint':>15}"
    )
    for name, text in templates().items():
        theirs, native = cfn_lint_findings(text), cfv_findings(engine, text)
        missed = {r for r, _, _ in theirs} - {r for r, _, _ in native}
        specs = specs_of(text, catalog)
        same = pipeline(specs, catalog, first_pass=True) == pipeline(specs, catalog, first_pass=False)
        print(
            f"{name:<28} {len(theirs):>5} {len(native):>5} {len(theirs & native):>5} {len(theirs - native):>10} "
            f"{len(native - theirs):>9} {','.join(sorted(missed)) or '-':>10} {same!s:>15}"
        )
        for resource, path, number in sorted(theirs - native):
            print(f"{'':<6}lint only: {resource}{path} #{number}")
        for resource, path, number in sorted(native - theirs):
            print(f"{'':<6}cfv only:  {resource}{path} #{number}")


def _median(run: Callable[[], object], times: int) -> float:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def _queue(i: int) -> dict[str, Any]:
    return {"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": 30 + i, "MessageRetentionPeriod": 3600 + i}}


def _template(n: int) -> str:
    kinds = [
        _queue,
        lambda i: {"Type": "AWS::EC2::Volume", "Properties": {"AvailabilityZone": "us-east-1a", "Size": 10 + i}},
        lambda i: {"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": 14, "LogGroupName": f"/g/{i}"}},
        lambda i: {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": "vpc-12345678", "CidrBlock": f"10.0.{i}.0/24"}},
        lambda i: {"Type": "AWS::EC2::Instance", "Properties": {"InstanceType": "t3.micro", "ImageId": "ami-12345678"}},
    ]
    resources = {f"R{i}": kinds[i % len(kinds)](i) for i in range(n)}
    return json.dumps({"AWSTemplateFormatVersion": "2010-09-09", "Resources": resources})


def speed_table(catalog: Catalog, engine: Any) -> None:
    from cfnlint.runner import run_template_by_data
    from cloudformation_validate import DetailLevel, Severity, TemplateContent, ValidateConfig

    config = ValidateConfig(detail_level=DetailLevel.STANDARD, severity_level=Severity.WARN)
    args, rules = validation._lint_runner("us-east-1")  # rules loaded once, as planning does
    print()
    print("Speed, whole validator on one JSON template (median); mix: SQS, EBS volume, log group, subnet, EC2 instance")
    print(f"{'validator':<26} {'1 res ms':>9} {'100 res ms':>11} {'fixed ms':>9} {'per res ms':>11}")
    import cfnlint.jsonschema.validators as module

    shared, original = module.create, module.create.original

    def as_shipped(text: str) -> object:
        module.create = original  # cfn-lint rebuilding its validator classes on every rule call
        try:  # ... and re-merging its settings on every read
            return list(run_template_by_data(json.loads(text), args._config, rules))
        finally:
            module.create = shared

    for label, run, times in (
        ("cfn-lint as shipped", as_shipped, 7),
        ("cfn-lint as run here", lambda text: list(run_template_by_data(json.loads(text), args, rules)), 7),
        ("cloudformation-validate", lambda text: engine.validate_template(TemplateContent(text), config), 30),
    ):
        one, hundred = _template(1), _template(100)
        run(one)
        t1 = _median(lambda r=run, t=one: r(t), times)  # type: ignore[misc]
        t100 = _median(lambda r=run, t=hundred: r(t), max(3, times // 5))  # type: ignore[misc]
        per = (t100 - t1) / 99
        print(f"{label:<26} {t1 * 1e3:>9.2f} {t100 * 1e3:>11.1f} {(t1 - per) * 1e3:>9.2f} {per * 1e3:>11.3f}")
    print()
    print("infra-mcp validate_specs (registry schema + linting) on changed resources, same mix (median)")
    print(f"{'changed':>8} {'cfn-lint only ms':>17} {'first pass ms':>14}")
    for n in (1, 10, 100):
        specs = parse_desired_state(
            {
                "resources": [
                    {"name": f"r{i}", "type": r["Type"], "properties": r["Properties"]}
                    for i, r in enumerate(json.loads(_template(n))["Resources"].values())
                ]
            },
            catalog,
        )
        plain = _median(lambda s=specs: pipeline(s, catalog, first_pass=False), 5)  # type: ignore[misc]
        screened = _median(lambda s=specs: pipeline(s, catalog, first_pass=True), 5)  # type: ignore[misc]
        print(f"{n:>8} {plain * 1e3:>17.1f} {screened * 1e3:>14.1f}")


def main() -> None:
    from cloudformation_validate import CelEngine, version

    catalog = Catalog()
    started = time.perf_counter()
    validation.warm_up()
    engine = CelEngine()
    print(f"cloudformation-validate {version()}; warm-up (both validators): {time.perf_counter() - started:.2f} s")
    findings_table(catalog, engine)
    speed_table(catalog, engine)


if __name__ == "__main__":
    main()

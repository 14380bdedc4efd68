"""A CloudFormation template as a desired state: parameters, conditions, mappings, outputs.

:func:`decode_template` turns the text (YAML with the short ``!Ref``/``!Sub`` tags, or JSON) into
plain data with cfn-lint's decoder, the one cfn-lint itself reads templates with.
:func:`read_template` evaluates it with the intrinsic-function evaluator into desired-state
entries (``{"name", "type", "properties", "depends_on"}``, the logical id as the name), ready for
``parse_desired_state``. Every problem is a :class:`Finding` located by a JSON pointer into the
template (``/Resources/Db/Properties/Engine``); the caller raises them all at once.

What a single project cannot honour is refused, never accepted and left to fail during
execution: ``Transform`` (SAM, macros), ``Fn::ImportValue``, custom resources and
``AWS::CloudFormation::*`` stack resources, and SSM-typed parameters.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from infra_mcp.domain.plan import SENSITIVE, Finding
from infra_mcp.domain.template.intrinsics import (
    NO_VALUE,
    Context,
    TemplateError,
    evaluate,
    evaluate_condition,
)

_SECTIONS = frozenset(
    {
        "AWSTemplateFormatVersion",
        "Description",
        "Metadata",
        "Parameters",
        "Rules",
        "Mappings",
        "Conditions",
        "Transform",
        "Resources",
        "Outputs",
    }
)
_RESOURCE_KEYS = frozenset(
    {
        "Type",
        "Properties",
        "DependsOn",
        "Condition",
        "DeletionPolicy",
        "UpdateReplacePolicy",
        "Metadata",
        "CreationPolicy",
        "UpdatePolicy",
    }
)
_POLICIES = frozenset({"Delete", "Retain", "RetainExceptOnCreate", "Snapshot"})
_LOGICAL_ID = re.compile(r"[A-Za-z0-9]{1,255}")


@dataclass(slots=True)
class TemplateReading:
    """A template evaluated for one project.

    Attributes:
        resources: Desired-state entries, in template order (resources whose condition is false
            left out).
        secret_paths: ``(resource name, pointer into its properties)`` of values derived from a
            ``NoEcho`` parameter: the caller seals them.
        zone_paths: ``(resource name, pointer)`` of availability zones ``Fn::GetAZs`` chose.
        outputs: Output name -> value (symbolic where known only after apply).
        deletion_policies: Resource name -> its ``DeletionPolicy`` when not ``Delete``.
        replace_policies: Resource name -> its ``UpdateReplacePolicy`` when not ``Delete``.
        findings: Errors (refusals, bad parameters) and warnings (attributes not honoured).
    """

    resources: list[dict[str, Any]] = field(default_factory=list)
    secret_paths: list[tuple[str, str]] = field(default_factory=list)
    zone_paths: list[tuple[str, str]] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    deletion_policies: dict[str, str] = field(default_factory=dict)
    replace_policies: dict[str, str] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)


def decode_template(text: str) -> tuple[dict[str, Any] | None, list[Finding]]:
    """Parse template text (YAML with CloudFormation's short tags, or JSON) into plain data.

    Returns:
        The template, or None with findings locating the syntax errors by line.
    """
    from cfnlint.decode import decode_str  # imported late: cfn-lint loads slowly

    template, matches = decode_str(text)
    if matches or template is None:
        return None, [
            Finding(
                path=f"line {getattr(m, 'linenumber', '?')}",
                rule="template-syntax",
                message=str(getattr(m, "message", m))[:300],
            )
            for m in matches or []
        ] or [Finding(rule="template-syntax", message="The template is empty or not YAML/JSON.")]
    plain = _plain(template)
    if not isinstance(plain, dict):
        return None, [Finding(rule="template-syntax", message="A template is an object with 'Resources'.")]
    return plain, []


def _plain(node: Any) -> Any:
    """cfn-lint's node classes (str/dict subclasses carrying line marks) as plain Python values."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, dt.date | dt.datetime):
        # YAML reads 2012-10-17 as a date; CloudFormation keeps it as the string written.
        return node.isoformat()
    return node


def _finding(
    path: str, message: str, *, rule: str = "template", severity: Literal["error", "warning", "info"] = "error"
) -> Finding:
    return Finding(severity=severity, path=path, rule=rule, message=message)


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


def read_template(
    template: Mapping[str, Any],
    parameters: Mapping[str, Any],
    *,
    pseudo: Mapping[str, Any],
    azs: Any = None,
) -> TemplateReading:
    """Evaluate a decoded template into desired-state entries.

    Args:
        template: The decoded template.
        parameters: Values given for its parameters (the others take their ``Default``).
        pseudo: Pseudo parameter values: ``AWS::Region``, ``AWS::AccountId``, ``AWS::StackName``...
        azs: Optional ``region -> [zones]`` for ``Fn::GetAZs``.

    Returns:
        The reading; callers check ``findings`` for errors before using the rest.
    """
    reading = TemplateReading()
    out = reading.findings
    for key in template:
        if key == "Transform":
            out.append(
                _finding(
                    "/Transform",
                    f"Transform {str(template[key])[:80]!r} is not supported: expand the template first "
                    "(for SAM, `sam build` / `sam package`), then plan the expanded template.",
                    rule="unsupported",
                )
            )
        elif key not in _SECTIONS:
            out.append(_finding(f"/{_escape(key)}", f"Unknown template section {key!r}.", rule="unsupported"))
    resources = template.get("Resources")
    if not isinstance(resources, dict) or not resources:
        out.append(_finding("/Resources", "A template needs 'Resources': at least one resource."))
        return reading
    values, secret = _parameters(template.get("Parameters"), parameters, out)
    conditions = template.get("Conditions") or {}
    mappings = template.get("Mappings") or {}
    if not isinstance(conditions, dict):
        out.append(_finding("/Conditions", "Conditions must be an object."))
        conditions = {}
    if not isinstance(mappings, dict):
        out.append(_finding("/Mappings", "Mappings must be an object."))
        mappings = {}
    names = {str(k) for k in resources}
    context = Context(
        parameters=values,
        pseudo=pseudo,
        resources=names,
        conditions=conditions,
        mappings=mappings,
        secret_parameters=secret,
    )
    if azs is not None:
        context.azs = azs
    for name in conditions:
        try:
            evaluate_condition(name, context, f"/Conditions/{_escape(name)}")
        except TemplateError as exc:
            out.append(_finding(exc.path or f"/Conditions/{_escape(name)}", exc.message, rule="condition"))
    if any(f.rule in ("parameter", "condition") and f.severity == "error" for f in out):
        # Resources evaluated without their parameters or conditions would only add echoes.
        return reading
    for name, body in resources.items():
        entry = _resource(name, body, context, reading)
        if entry is not None:
            reading.resources.append(entry)
    _outputs(template.get("Outputs"), context, reading)
    return reading


def _parameters(declared: Any, given: Mapping[str, Any], out: list[Finding]) -> tuple[dict[str, Any], frozenset[str]]:
    values: dict[str, Any] = {}
    secret: set[str] = set()
    declared = declared if isinstance(declared, dict) else {}
    for name in given:
        if name not in declared:
            out.append(
                _finding(
                    f"/Parameters/{_escape(str(name))}",
                    f"Parameter {name!r} is not declared by the template (it declares {sorted(declared)[:10]}).",
                    rule="parameter",
                )
            )
    for name, spec in declared.items():
        where = f"/Parameters/{_escape(name)}"
        if not isinstance(spec, dict) or not isinstance(spec.get("Type"), str):
            out.append(_finding(where, f"Parameter {name} needs a Type.", rule="parameter"))
            continue
        kind = spec["Type"]
        if kind.startswith("AWS::SSM::Parameter"):
            out.append(
                _finding(
                    where,
                    f"Parameter {name} of type {kind} is not supported: pass the value itself as a String parameter.",
                    rule="unsupported",
                )
            )
            continue
        if name in given:
            value = given[name]
        elif "Default" in spec:
            value = spec["Default"]
        else:
            out.append(
                _finding(where, f"Parameter {name} has no Default: pass a value in 'parameters'.", rule="parameter")
            )
            continue
        problem, value = _check_parameter(kind, spec, value)
        if problem:
            out.append(_finding(where, f"Parameter {name}: {problem}", rule="parameter"))
            continue
        values[name] = value
        if spec.get("NoEcho") in (True, "true", "True"):
            secret.add(name)
    return values, frozenset(secret)


def _check_parameter(kind: str, spec: Mapping[str, Any], value: Any) -> tuple[str, Any]:
    """(problem or "", the value in the shape ``Ref`` gives it)."""
    is_list = kind.startswith("List<") or kind == "CommaDelimitedList"
    if is_list:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str | int | float) for i in items):
            return "a list parameter takes a comma-separated string or a list of strings", value
        items = [str(i).strip() for i in items]
        allowed = spec.get("AllowedValues")
        bad = [i for i in items if isinstance(allowed, list) and i not in [str(a) for a in allowed]]
        if bad:
            return f"{bad[0]!r} is not one of the AllowedValues {allowed}", value
        return "", items
    if isinstance(value, bool):
        value = "true" if value else "false"
    if isinstance(value, list | dict) or value is None:
        return f"a {kind} parameter takes a single value", value
    text = str(value)
    allowed = spec.get("AllowedValues")
    if isinstance(allowed, list) and text not in [str(a) for a in allowed]:
        return f"{text[:60]!r} is not one of the AllowedValues {allowed}", value
    pattern = spec.get("AllowedPattern")
    if isinstance(pattern, str) and re.fullmatch(pattern, text) is None:
        return str(spec.get("ConstraintDescription") or f"the value must match {pattern}"), value
    if "MinLength" in spec and len(text) < int(spec["MinLength"]):
        return f"shorter than MinLength {spec['MinLength']}", value
    if "MaxLength" in spec and len(text) > int(spec["MaxLength"]):
        return f"longer than MaxLength {spec['MaxLength']}", value
    if kind == "Number":
        try:
            number: int | float = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                return f"{text[:40]!r} is not a number", value
        if "MinValue" in spec and number < float(spec["MinValue"]):
            return f"below MinValue {spec['MinValue']}", value
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            return f"above MaxValue {spec['MaxValue']}", value
        return "", number
    return "", text


def _resource(name: str, body: Any, context: Context, reading: TemplateReading) -> dict[str, Any] | None:
    out = reading.findings
    where = f"/Resources/{_escape(name)}"
    if not _LOGICAL_ID.fullmatch(name):
        out.append(_finding(where, f"Logical id {name!r} must be alphanumeric."))
        return None
    if not isinstance(body, dict) or not isinstance(body.get("Type"), str):
        out.append(_finding(f"{where}/Type", f"Resource {name} needs a Type."))
        return None
    kind = body["Type"]
    if kind.startswith("Custom::") or kind == "AWS::CloudFormation::CustomResource":
        out.append(
            _finding(
                f"{where}/Type",
                f"{name} is a custom resource ({kind}): it needs a Lambda or SNS provider that only a "
                "CloudFormation stack calls. Replace it with the resources it would create.",
                rule="unsupported",
            )
        )
        return None
    if kind.startswith("AWS::CloudFormation::"):
        out.append(
            _finding(
                f"{where}/Type",
                f"{name} is a {kind} resource, which only a CloudFormation stack can hold: plan nested "
                "stacks as their own templates.",
                rule="unsupported",
            )
        )
        return None
    if kind.startswith("AWS::Serverless::"):
        out.append(
            _finding(
                f"{where}/Type",
                f"{name} is a SAM resource ({kind}): expand the template with SAM first.",
                rule="unsupported",
            )
        )
        return None
    for key in body:
        if key not in _RESOURCE_KEYS:
            out.append(_finding(f"{where}/{_escape(key)}", f"Unknown resource attribute {key!r}."))
        elif key in ("CreationPolicy", "UpdatePolicy"):
            out.append(
                _finding(
                    f"{where}/{key}",
                    f"{key} is a CloudFormation stack behaviour that Cloud Control does not apply; it is ignored.",
                    severity="warning",
                )
            )
    condition = body.get("Condition")
    if condition is not None:
        try:
            if not evaluate_condition(str(condition), context, f"{where}/Condition"):
                return None
        except TemplateError as exc:
            out.append(_finding(exc.path, exc.message))
            return None
    for attribute, target in (
        ("DeletionPolicy", reading.deletion_policies),
        ("UpdateReplacePolicy", reading.replace_policies),
    ):
        policy = body.get(attribute)
        if policy is None:
            continue
        if policy not in _POLICIES:
            out.append(_finding(f"{where}/{attribute}", f"{attribute} is one of {sorted(_POLICIES)}."))
        elif policy != "Delete":
            target[name] = str(policy)
    properties = body.get("Properties") or {}
    if not isinstance(properties, dict):
        out.append(_finding(f"{where}/Properties", "Properties must be an object."))
        return None
    base = f"{where}/Properties"
    context.secret_paths = set()
    context.zone_paths = set()
    try:
        evaluated = evaluate(properties, context, base)
    except TemplateError as exc:
        out.append(
            _finding(exc.path, exc.message, rule="unsupported" if "not supported" in exc.message else "template")
        )
        return None
    for path in sorted({_landing(evaluated, p[len(base) :]) for p in context.secret_paths}):
        reading.secret_paths.append((name, path))
    reading.zone_paths.extend((name, p[len(base) :]) for p in sorted(context.zone_paths))
    depends = body.get("DependsOn") or []
    if isinstance(depends, str):
        depends = [depends]
    if not isinstance(depends, list) or not all(isinstance(d, str) for d in depends):
        out.append(_finding(f"{where}/DependsOn", "DependsOn is a resource name or a list of them."))
        depends = []
    return {"name": name, "type": kind, "properties": evaluated, "depends_on": depends}


def _landing(tree: Any, pointer: str) -> str:
    """Where a secret parameter's value ended up: the first scalar on its way down ``pointer``.

    A ``Ref`` inside ``Fn::Join`` or ``Fn::Sub`` is recorded at its own place in the function's
    arguments; the secret lands in the whole value the function made, which is what gets sealed.
    """
    node, kept = tree, []
    for segment in pointer.lstrip("/").split("/") if pointer else []:
        key = segment.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            break
        kept.append(segment)
        if not isinstance(node, dict | list):
            break
    return "/" + "/".join(kept) if kept else ""


def _outputs(outputs: Any, context: Context, reading: TemplateReading) -> None:
    if not isinstance(outputs, dict):
        return
    for name, body in outputs.items():
        where = f"/Outputs/{_escape(name)}"
        if not isinstance(body, dict) or "Value" not in body:
            reading.findings.append(_finding(where, f"Output {name} needs a Value."))
            continue
        try:
            if "Condition" in body and not evaluate_condition(str(body["Condition"]), context, f"{where}/Condition"):
                continue
            context.secret_paths = set()
            value = evaluate(body["Value"], context, f"{where}/Value")
            if context.secret_paths:
                # An output made of a NoEcho parameter would print the secret: shown masked.
                value = SENSITIVE
        except TemplateError as exc:
            reading.findings.append(_finding(exc.path, exc.message))
            continue
        if "Export" in body:
            reading.findings.append(
                _finding(
                    f"{where}/Export",
                    "Exports are shared between CloudFormation stacks; here the output is kept, the export is not.",
                    severity="warning",
                )
            )
        if value is not NO_VALUE:
            reading.outputs[name] = value

"""Validation of the resources a plan creates or updates: registry schema, then cfn-lint.

Only the changed resources are checked, as one small template, so the cost follows the size of
the change and not the size of the state. Resources they refer to are added to that template as
empty stand-ins (so ``Ref`` / ``Fn::GetAtt`` resolve and attribute names are checked), and
findings located in the stand-ins are dropped. Values not known until apply (references) and
sealed secrets are never judged: their locations are skipped by the schema check, and cfn-lint
sees an intrinsic function or a dynamic reference in their place.

All findings are returned at once; the planner blocks on errors and keeps warnings.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError as SchemaError

from infra_mcp.domain.plan import Finding, ResourceSpec
from infra_mcp.domain.refs import Reference, as_reference, escape, is_pseudo, iter_references
from infra_mcp.domain.sealed import digest_of
from infra_mcp.domain.tags import with_tags
from infra_mcp.domain.type_catalog import ResourceTypeInfo, TypeCatalog
from infra_mcp.domain.typefacts import type_facts

MAX_MESSAGE = 300
# cfn-lint sees sealed secrets as this dynamic reference, which is what a careful template would
# hold there anyway (and keeps W2501 "password hardcoded" from flagging our own placeholder).
SECRET_STAND_IN = "{{resolve:secretsmanager:infra-mcp-sealed-value}}"  # noqa: S105 (a placeholder, not a secret)

_validators: dict[tuple[str, int], Draft7Validator | None] = {}
_validators_lock = threading.Lock()


def _validator(info: ResourceTypeInfo) -> Draft7Validator | None:
    key = (info.type_name, id(info.schema))
    if key in _validators:
        return _validators[key]
    schema = info.schema
    read_only = {p for p in info.read_only_properties if "/" not in p}
    shape = {
        "type": "object",
        "properties": schema.get("properties", {}),
        "definitions": schema.get("definitions", {}),
        "required": [r for r in schema.get("required", []) if r not in read_only],
        "additionalProperties": schema.get("additionalProperties", True),
    }
    for keyword in ("oneOf", "anyOf", "allOf", "dependencies", "dependentRequired"):
        if keyword in schema:
            shape[keyword] = schema[keyword]
    try:
        validator: Draft7Validator | None = Draft7Validator(shape)
    except Exception:  # a schema jsonschema cannot compile: leave that type to cfn-lint
        validator = None
    with _validators_lock:
        _validators[key] = validator
    return validator


def _unknown_paths(value: Any, pointer: str = "") -> list[str]:
    """Pointers of references and sealed secrets in a property tree (values not to judge)."""
    found: list[str] = []
    work: list[tuple[Any, str]] = [(value, pointer)]
    while work:
        node, where = work.pop()
        if isinstance(node, dict):
            if as_reference(node) is not None or digest_of(node) is not None or _is_intrinsic(node):
                found.append(where)
                continue
            work.extend((v, f"{where}/{escape(k)}") for k, v in node.items())
        elif isinstance(node, list):
            work.extend((v, f"{where}/{i}") for i, v in enumerate(node))
    return found


def _is_intrinsic(node: dict[str, Any]) -> bool:
    return len(node) == 1 and next(iter(node)).startswith("Fn::")


def _under(pointer: str, prefixes: Iterable[str]) -> bool:
    return any(pointer == p or pointer.startswith(p + "/") or p.startswith(pointer + "/") for p in prefixes)


def schema_findings(spec: ResourceSpec, info: ResourceTypeInfo) -> list[Finding]:
    """Registry-schema findings for one resource (``rule="schema"``)."""
    findings: list[Finding] = []
    properties = with_tags(spec.properties, spec.tags, info)
    read_only = {p for p in info.read_only_properties if "/" not in p}
    for key in properties:
        if key in read_only and key not in info.primary_identifier:
            findings.append(
                Finding(
                    resource=spec.name,
                    path=f"/properties/{escape(key)}",
                    rule="read-only",
                    message=f"{key} is read-only: AWS sets it. Remove it (read it with Fn::GetAtt instead).",
                )
            )
    if spec.tags and info.tag_property is None:
        findings.append(
            Finding(
                resource=spec.name,
                path="/tags",
                rule="schema",
                message=f"{spec.type} cannot be tagged; remove 'tags'.",
            )
        )
    validator = _validator(info)
    if validator is None:
        return findings
    skip = _unknown_paths(properties)
    try:
        errors: list[SchemaError] = list(validator.iter_errors(properties))
    except Exception:  # e.g. a pattern Python's re cannot compile: cfn-lint still checks the resource
        return findings
    for error in errors:
        pointer = "".join(f"/{escape(p)}" for p in error.absolute_path)
        if skip and (_under(pointer, skip) or _context_hits(error, skip)):
            continue
        if error.validator == "required":
            missing = re.findall(r"'([^']+)' is a required property", error.message)
            if missing:
                pointer = f"{pointer}/{escape(missing[0])}"
        elif error.validator == "additionalProperties":
            # Point at the unexpected key, as cfn-lint does, when there is one.
            extra = re.findall(r"\('([^']+)' was unexpected\)", error.message)
            if extra:
                pointer = f"{pointer}/{escape(extra[0])}"
        findings.append(
            Finding(
                resource=spec.name,
                path=f"/properties{pointer}",
                rule="schema",
                message=_trim(error.message),
            )
        )
    return findings


def _context_hits(error: SchemaError, skip: Sequence[str]) -> bool:
    for sub in error.context or ():
        pointer = "".join(f"/{escape(p)}" for p in sub.absolute_path)
        if _under(pointer, skip):
            return True
    return False


def _trim(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."


# -- cfn-lint ----------------------------------------------------------------------------------

_lint_state: dict[str, Any] = {}
_lint_lock = threading.Lock()


def _lint_runner(region: str) -> tuple[Any, Any]:
    """cfn-lint's config and loaded rules for a region, built once (loading rules takes ~0.4 s)."""
    cached = _lint_state.get(region)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    with _lint_lock:
        if region not in _lint_state:
            from cfnlint.config import ConfigMixIn  # imported late: ~0.7 s, only when linting
            from cfnlint.runner import Runner

            config = ConfigMixIn(regions=[region])
            _lint_state[region] = (config, Runner(config).rules)
        return _lint_state[region]  # type: ignore[no-any-return]


def warm_up(regions: Iterable[str] = ("us-east-1",)) -> None:
    """Load cfn-lint and its rules now (about 1 s) rather than during the first plan.

    The server may call this at start-up; the benchmark calls it before measuring.
    """
    for region in regions:
        _lint_runner(region)


def _logical_id(index: int, name: str) -> str:
    # CloudFormation logical ids are alphanumeric; the index keeps them unique.
    return f"R{index}{re.sub('[^A-Za-z0-9]', '', name)[:48]}"


def _for_template(value: Any, ids: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        if digest_of(value) is not None:
            return SECRET_STAND_IN
        ref = as_reference(value)
        if ref is not None and not ref.malformed:
            if is_pseudo(ref.target):
                return value
            target = ids.get(ref.target, ref.target)
            if ref.attribute is None:
                return {"Ref": target}
            return {"Fn::GetAtt": [target, ref.attribute]}
        if len(value) == 1 and "Fn::Sub" in value:
            return {"Fn::Sub": _sub_for_template(value["Fn::Sub"], ids)}
        return {k: _for_template(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_for_template(v, ids) for v in value]
    return value


def _sub_for_template(arg: Any, ids: Mapping[str, str]) -> Any:
    """An ``Fn::Sub`` argument with the resource names in its string renamed to logical ids."""

    def rename(match: re.Match[str]) -> str:
        name, dot, attribute = match.group(1).partition(".")
        return "${" + ids.get(name, name) + dot + attribute + "}" if name in ids else match.group(0)

    if isinstance(arg, str):
        return _SUB_NAME.sub(rename, arg)
    if isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str):
        return [_SUB_NAME.sub(rename, arg[0]), _for_template(arg[1], ids)]
    return _for_template(arg, ids)


_SUB_NAME = re.compile(r"\$\{([^!}][^}]*)\}")


def lint_findings(
    specs: Sequence[ResourceSpec],
    catalog: TypeCatalog,
    *,
    neighbours: Mapping[str, tuple[str, str]] | None = None,
) -> list[Finding]:
    """cfn-lint's findings on ``specs``, rendered as one template per region.

    Args:
        specs: The resources to check.
        catalog: Type knowledge (tag property shapes).
        neighbours: ``name -> (type, region)`` of resources the specs refer to that are not
            checked themselves; they become empty stand-ins in the template.
    """
    with _lint_lock:
        # cfn-lint's package has import cycles that break if two threads import it at once (the
        # server warms it up in a thread at start-up), so every first import goes under the lock.
        from cfnlint.runner import run_template_by_data

    findings: list[Finding] = []
    by_region: dict[str, list[ResourceSpec]] = {}
    for spec in specs:
        by_region.setdefault(spec.region, []).append(spec)
    neighbours = neighbours or {}
    for region, everything in sorted(by_region.items()):
        group, copies = _distinct(everything, neighbours)
        names = {s.name for s in group}
        ids: dict[str, str] = {}
        for i, spec in enumerate(group):
            ids[spec.name] = _logical_id(i, spec.name)
        # A resource linted through its identical twin is still referred to by name: it becomes a
        # stand-in like the neighbours, or the reference would read as dangling.
        stand_ins = {**{s.name: (s.type, s.region) for s in everything if s.name not in names}, **neighbours}
        wanted = {
            r.target
            for s in group
            for r in _refs(s.properties)
            if r.target not in names and not is_pseudo(r.target) and r.target in stand_ins
        }
        offset = len(group)
        for j, name in enumerate(sorted(wanted)):
            ids[name] = _logical_id(offset + j, name)
        resources: dict[str, Any] = {}
        for spec in group:
            info = type_facts(catalog, spec.type, spec.region).info
            resources[ids[spec.name]] = {
                "Type": spec.type,
                "Properties": _for_template(with_tags(spec.properties, spec.tags, info), ids),
            }
        for name in sorted(wanted):
            resources[ids[name]] = {"Type": stand_ins[name][0]}
        template = {"AWSTemplateFormatVersion": "2010-09-09", "Resources": resources}
        config, rules = _lint_runner(region)
        back = {lid: name for name, lid in ids.items() if name in names}
        for match in run_template_by_data(template, config, rules):
            path = list(getattr(match, "path", None) or [])
            if len(path) < 2 or path[0] != "Resources" or path[1] not in back:
                continue
            rest = path[3:] if len(path) > 2 and path[2] == "Properties" else path[2:]
            rule_id = str(match.rule.id)
            findings.append(
                Finding(
                    severity={"E": "error", "W": "warning"}.get(rule_id[:1], "info"),
                    resource=back[path[1]],
                    path=("/properties" if len(path) > 2 and path[2] == "Properties" else "")
                    + "".join(f"/{escape(p)}" for p in rest),
                    rule=rule_id,
                    message=_trim(str(match.message)),
                )
            )
    if copies:
        findings.extend(
            f.model_copy(update={"resource": twin}) for f in list(findings) for twin in copies.get(f.resource or "", ())
        )
    return findings


def _distinct(
    specs: Sequence[ResourceSpec], neighbours: Mapping[str, tuple[str, str]]
) -> tuple[list[ResourceSpec], dict[str, list[str]]]:
    """Resources with identical content are linted once; their findings are copied to the twins.

    Content is the type and the properties, with references to stand-ins reduced to the
    stand-in's type (what cfn-lint can know of them). Tags are left out of the comparison: the
    schema check validates every resource's tags.
    """
    if len(specs) < 2:
        return list(specs), {}
    own = {s.name for s in specs}
    seen: dict[str, str] = {}
    kept: list[ResourceSpec] = []
    copies: dict[str, list[str]] = {}
    for spec in specs:
        ids = {
            r.target: (r.target if r.target in own else "@" + neighbours.get(r.target, ("?", ""))[0])
            for r in _refs(spec.properties)
        }
        key = json.dumps([spec.type, _for_template(spec.properties, ids)], sort_keys=True, default=str)
        first = seen.get(key)
        if first is None:
            seen[key] = spec.name
            kept.append(spec)
        else:
            copies.setdefault(first, []).append(spec.name)
    return kept, copies


def _refs(properties: Any) -> list[Reference]:
    return [r for r in iter_references(properties) if not r.malformed]


def validate_specs(
    specs: Sequence[ResourceSpec],
    catalog: TypeCatalog,
    *,
    neighbours: Mapping[str, tuple[str, str]] | None = None,
    lint: bool = True,
    schema_only: frozenset[str] | set[str] = frozenset(),
) -> list[Finding]:
    """Every finding on ``specs``: registry schema, then cfn-lint (one finding per location).

    ``schema_only`` names resources cfn-lint may skip: those whose properties are exactly what
    was applied (and checked) before and whose tags alone change. The schema check still runs
    on them, tags included.

    Where both report the same resource and path, cfn-lint's finding is kept: its rule id
    (e.g. E3012) can be looked up and its message is usually the more specific.
    """
    schema: list[Finding] = []
    for spec in specs:
        schema.extend(schema_findings(spec, type_facts(catalog, spec.type, spec.region).info))
    if not lint or not specs:
        return schema
    to_lint = [s for s in specs if s.name not in schema_only]
    linted = [_one_path_format(f) for f in lint_findings(to_lint, catalog, neighbours=neighbours)] if to_lint else []
    located = {(f.resource, f.path) for f in linted if f.severity == "error"}
    kept = [f for f in schema if (f.resource, f.path) not in located and not _reported_below(f, located)]
    return kept + linted


_REQUIRED = re.compile(r"^'([^']+)' is a required property")


def _one_path_format(finding: Finding) -> Finding:
    """cfn-lint's "required" findings point at the object; ours (and a reader) at the missing key."""
    missing = _REQUIRED.match(finding.message)
    if missing and not finding.path.endswith("/" + escape(missing.group(1))):
        return finding.model_copy(update={"path": f"{finding.path}/{escape(missing.group(1))}"})
    return finding


def _reported_below(finding: Finding, located: set[tuple[str | None, str]]) -> bool:
    """A schema finding on an object whose offending key cfn-lint already names (one problem, once).

    jsonschema reports an unexpected property at the object holding it; cfn-lint at the property.
    """
    if finding.rule != "schema" or "Additional properties" not in finding.message:
        return False
    prefix = finding.path + "/"
    return any(resource == finding.resource and path.startswith(prefix) for resource, path in located)

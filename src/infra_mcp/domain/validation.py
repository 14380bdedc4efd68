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

import atexit
import contextlib
import json
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError as SchemaError

from infra_mcp.domain.plan import Finding, ResourceSpec
from infra_mcp.domain.refs import (
    Reference,
    as_reference,
    escape,
    is_pseudo,
    iter_references,
    reference_targets,
)
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

            _share_validator_classes()
            config = ConfigMixIn(regions=[region])
            _lint_state[region] = (_SettledConfig(config), _linked_once(Runner(config).rules))
        return _lint_state[region]  # type: ignore[no-any-return]


class _SettledConfig:
    """cfn-lint's configuration with each setting read once.

    cfn-lint recomputes a setting (merging command line, file, template and manual values) on
    every read, and its rules read them thousands of times per template. The templates linted
    here are built by :func:`lint_findings` and never carry ``Metadata`` (where a template would
    set its own cfn-lint settings), so every setting is the same for every template.
    """

    def __init__(self, config: Any) -> None:
        object.__setattr__(self, "_config", config)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._config, name)
        if not callable(value):
            object.__setattr__(self, name, value)  # read once; later reads find it on self
        return value


def _linked_once(rules: Any) -> Any:
    """cfn-lint's rules, their parent and child rules linked now rather than on every template.

    cfn-lint's ``Rules.run`` links each rule to its child rules before every template, by
    comparing each child's id with every rule id in turn: about 60,000 comparisons, a third of
    linting one small template. The links depend only on the rule set, which never changes here
    (the rules of ``__init__``), so they are made once, with the same outcome, and every later run
    does the rest of cfn-lint's run unchanged (tests/unit/test_findings_match_cfn_lint.py).
    """
    from cfnlint.rules import Rules

    if not isinstance(rules, Rules) or not callable(getattr(rules, "run_check", None)):
        return rules  # not the shape this was written for: cfn-lint's own run, links and all
    data = rules.data
    for rule_id, rule in data.items():
        for key in list(rule.child_rules):
            if key in data:
                rule.child_rules[key] = data[key]
        for parent in rule.parent_rules:
            if parent in data:
                data[parent].child_rules[rule_id] = rule
    rules.__class__ = _linked_rules_class(type(rules))
    return rules


_linked_classes: dict[type, type] = {}


def _linked_rules_class(base: type) -> type:
    found = _linked_classes.get(base)
    if found is not None:
        return found

    class LinkedRules(base):  # type: ignore[misc]
        """cfn-lint's rules whose links were made once (see :func:`_linked_once`)."""

        def run(self, filename: str | None, cfn: Any, config: Any) -> Any:
            enabled: set[str] = set()
            for rule_id, rule in self.data.items():
                rule.configure(config.configure_rules.get(rule_id, None), config.include_experimental)
                rule.initialize(cfn)
                if self.is_rule_enabled(rule_id, config):
                    enabled.add(rule_id)
            for rule_id, rule in self.data.items():
                yield from self._filter_matches(
                    enabled, self.run_check(rule.matchall, filename, rule_id, config, enabled, filename, cfn)
                )
            for name, attributes in cfn.get_resources().items():
                type_name = attributes.get("Type")
                properties = attributes.get("Properties")
                if not (isinstance(type_name, str) and isinstance(properties, dict)):
                    continue
                path = ["Resources", name, "Properties"]
                for rule_id, rule in self.data.items():
                    yield from self._filter_matches(
                        enabled,
                        self.run_check(
                            rule.matchall_resource_properties,
                            filename,
                            rule_id,
                            config,
                            enabled,
                            filename,
                            cfn,
                            properties,
                            type_name,
                            path,
                        ),
                    )

    _linked_classes[base] = LinkedRules
    return LinkedRules


_validator_classes: dict[tuple[Any, ...], Any] = {}


def _share_validator_classes() -> None:
    """Make cfn-lint build each of its JSON-schema validator classes once per process, not per rule call.

    cfn-lint's ``Validator.extend`` calls ``create``, which builds a new dataclass on every call
    (about 140 per template, each compiled with ``exec``: two thirds of linting 40 resources).
    The class is a function of the validators, the function filter's settings and the function
    resolvers, which take a handful of distinct values; built once each, linting finds exactly
    the same (tests/unit/test_findings_match_cfn_lint.py) in a third of the time
    (benchmarks/validators.py).
    """
    import cfnlint.jsonschema.validators as module

    build = module.create
    if getattr(build, "shared", False):
        return

    def create(validators: Any = None, function_filter: Any = None, fn_resolvers: Any = None) -> Any:
        try:
            key = (
                tuple((validators or {}).items()),
                type(function_filter),
                repr(function_filter),  # a dataclass: its settings, not its identity
                tuple((fn_resolvers or {}).items()),
            )
            found = _validator_classes.get(key)
        except TypeError:  # something unhashable: build it as cfn-lint would
            return build(validators, function_filter, fn_resolvers)
        if found is None:
            if len(_validator_classes) > 1024:  # never a leak, whatever cfn-lint passes
                _validator_classes.clear()
            found = _validator_classes[key] = build(validators, function_filter, fn_resolvers)
        return found

    create.shared = True  # type: ignore[attr-defined]
    create.original = build  # type: ignore[attr-defined]
    module.create = create


def warm_up(regions: Iterable[str] = ("us-east-1",)) -> None:
    """Load cfn-lint, its rules and the first-pass validator now (about 1.5 s), not in the first plan.

    The server may call this at start-up; the benchmark calls it before measuring.
    """
    for region in regions:
        _lint_runner(region)
        with contextlib.suppress(ImportError):  # the first pass is then skipped (see _for_cfn_lint)
            _first_pass_gaps(region)


# -- first pass: cloudformation-validate -------------------------------------------------------
#
# AWS's cloudformation-validate checks a template natively in about a millisecond per resource
# where cfn-lint takes several, and it carries most of cfn-lint's rules under the same numbers. It
# screens the changed resources; cfn-lint then runs only on the resources it flags, plus those of
# the types that cfn-lint rules it does not carry apply to. Every finding reported is cfn-lint's,
# so the rule "no error cfn-lint does not report" holds by construction, and the first pass only
# decides where cfn-lint is worth its cost. benchmarks/validators.py compares the two.

# Advice cloudformation-validate gives that has no cfn-lint counterpart: it must not send a
# resource to cfn-lint by itself (the W9003 coercions are done before validation anyway).
_ADVICE_ONLY = frozenset({"W9003", "W9010"})
_first_pass_state: dict[str, Any] = {}


def _first_pass_engine() -> Any:
    engine = _first_pass_state.get("engine")
    if engine is None:
        with _lint_lock:
            if "engine" not in _first_pass_state:
                from cloudformation_validate import CelEngine  # native; ~0.4 s to compile its rules

                _first_pass_state["engine"] = CelEngine()
                # Free the native engine while its bindings still exist (at interpreter exit they are
                # torn down first, and its finaliser would complain on stderr).
                atexit.register(_first_pass_state.pop, "engine", None)
            engine = _first_pass_state["engine"]
    return engine


def _first_pass_gaps(region: str) -> tuple[dict[str, frozenset[str] | None], frozenset[str]]:
    """What only cfn-lint checks: ``(type -> top-level properties its rules read, formats)``.

    The types (and properties) named by any of cfn-lint's type-specific error and warning rules,
    and the ``format`` keywords (or ``keyword:<schema keyword>``) checked in any type by rules
    whose number cloudformation-validate does not carry. A type mapped to None is checked by
    such a rule as a whole.
    """
    key = f"gaps:{region}"
    found = _first_pass_state.get(key)
    if found is not None:
        return found  # type: ignore[no-any-return]
    _, rules = _lint_runner(region)
    carried = {str(r.id)[1:] for r in _first_pass_engine().list_rules()}
    types: dict[str, set[str] | None] = {}
    formats: set[str] = set()
    for rule in rules.values():
        rule_id = str(rule.id)
        if rule_id[:1] not in ("E", "W"):
            continue
        if rule_id[1:] not in carried:
            format_keyword = getattr(rule, "format_keyword", None)
            if isinstance(format_keyword, str):
                formats.add(format_keyword)
            elif not getattr(rule, "keywords", None) and rule_id[1:2] == "3":
                # A resource-property rule for a JSON-schema keyword (E3008 prefixItems, E3065
                # maxUniqueItems): the class is named for the keyword.
                name = type(rule).__name__
                formats.add("keyword:" + name[:1].lower() + name[1:])
        # Rules written for one type (E3501 for SQS queues, W3010 for zones of a subnet, ...) are
        # cfn-lint's own knowledge, carried number or not: the first pass misses some of them.
        for keyword in getattr(rule, "keywords", None) or ():
            named = _RULE_KEYWORD.match(str(keyword))
            if not named:
                continue
            type_name, prop = named.group(1), named.group(2)
            known = types.get(type_name, set())
            types[type_name] = None if known is None or not prop else {*known, prop}
    found = ({t: None if p is None else frozenset(p) for t, p in types.items()}, frozenset(formats))
    _first_pass_state[key] = found
    return found


# "Resources/AWS::ECS::TaskDefinition/Properties/ContainerDefinitions/*/..." -> type, property
_RULE_KEYWORD = re.compile(r"(?:Resources/)?([A-Za-z0-9]+::[A-Za-z0-9]+::[A-Za-z0-9]+)(?:/Properties(?:/([^/*]+))?)?")


def _only_cfn_lint_checks(type_name: str, properties: Mapping[str, Any], region: str) -> bool:
    """Whether cfn-lint has rules for what a resource sets (tags merged in) that the first pass lacks."""
    types, _ = _first_pass_gaps(region)
    if type_name in types:
        props = types[type_name]
        if props is None or any(p in properties for p in props):
            return True
    formatted = _formatted_properties(type_name, region)
    if "*" in formatted or any(p in properties for p in formatted):
        return True
    return _fails_a_plain_format(type_name, properties, region)


def _fails_a_plain_format(type_name: str, properties: Mapping[str, Any], region: str) -> bool:
    """Whether a value of a resource may fail a plain JSON-schema format cfn-lint checks (E3002).

    cfn-lint checks ``ipv4-network``, ``date-time`` and the like under its property rule, whose
    number cloudformation-validate carries without checking those formats. The values at such
    locations are checked here with cfn-lint's own format checker: a literal that fails, or a
    function cfn-lint would resolve first, sends the resource to cfn-lint.
    """
    from cfnlint.jsonschema._format import cfn_format_checker
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

    try:
        schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema(region, type_name).schema
    except Exception:  # a type cfn-lint has no schema for: cfn-lint says so
        return True
    checkers = cfn_format_checker.checkers
    definitions = schema.get("definitions", {})
    work: list[tuple[Any, Any]] = [(properties, {"properties": schema.get("properties", {})})]
    while work:
        value, node = work.pop()
        node = _resolved(node, definitions)
        if any(k in node for k in ("anyOf", "oneOf", "allOf")) and _mentions(
            {k: node[k] for k in ("anyOf", "oneOf", "allOf") if k in node}, definitions, frozenset(checkers)
        ):
            return True  # the format sits in a branch: let cfn-lint pick the branch
        fmt = node.get("format")
        if isinstance(value, dict):
            if len(value) == 1 and next(iter(value)).startswith("Fn::"):
                if isinstance(fmt, str) and fmt in checkers:
                    return True
                continue
            props = node.get("properties")
            patterns = node.get("patternProperties")
            for key, child in value.items():
                sub = props.get(key) if isinstance(props, dict) else None
                if sub is None and isinstance(patterns, dict):
                    sub = next(iter(patterns.values()), None) if len(patterns) == 1 else None
                if isinstance(sub, dict):
                    work.append((child, sub))
        elif isinstance(value, list):
            items = node.get("items")
            if isinstance(items, dict):
                work.extend((child, items) for child in value)
        elif isinstance(fmt, str) and fmt in checkers:
            function, raises = checkers[fmt]
            try:
                if not function(value):
                    return True
            except raises:
                return True
    return False


def _resolved(node: Any, definitions: Mapping[str, Any]) -> dict[str, Any]:
    for _ in range(10):
        ref = node.get("$ref") if isinstance(node, dict) else None
        if not (isinstance(ref, str) and ref.startswith("#/definitions/")):
            break
        node = definitions.get(ref.removeprefix("#/definitions/"), {})
    return node if isinstance(node, dict) else {}


def _formatted_properties(type_name: str, region: str) -> frozenset[str]:
    """Top-level properties of ``type_name`` under which cfn-lint checks a format the first pass lacks."""
    key = f"formats:{region}:{type_name}"
    known = _first_pass_state.get(key)
    if known is not None:
        return known  # type: ignore[no-any-return]
    _, formats = _first_pass_gaps(region)
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

    try:
        schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema(region, type_name).schema
    except Exception:  # a type cfn-lint has no schema for: cfn-lint says so on any property
        found: frozenset[str] = frozenset(["*"])
    else:
        definitions = schema.get("definitions", {})
        found = frozenset(
            name for name, sub in (schema.get("properties") or {}).items() if _mentions(sub, definitions, formats)
        )
    _first_pass_state[key] = found
    return found


def _mentions(node: Any, definitions: Mapping[str, Any], formats: frozenset[str]) -> bool:
    """Whether a schema node, following its ``$ref`` definitions, carries one of ``formats``."""
    seen: set[str] = set()
    work = [node]
    while work:
        item = work.pop()
        if isinstance(item, dict):
            if item.get("format") in formats or any(f"keyword:{k}" in formats for k in item):
                return True
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/definitions/") and ref not in seen:
                seen.add(ref)
                work.append(definitions.get(ref.removeprefix("#/definitions/")))
            work.extend(v for k, v in item.items() if k != "$ref")
        elif isinstance(item, list):
            work.extend(item)
    return False


def _flagged_by_first_pass(template: dict[str, Any], region: str) -> set[str] | None:
    """Logical ids cloudformation-validate finds a problem in (warnings and worse).

    None when it could not analyse the template: then cfn-lint checks everything.
    """
    from cloudformation_validate import (
        DetailLevel,
        PseudoParameterOverrides,
        ReportStatus,
        Severity,
        TemplateContent,
        ValidateConfig,
    )

    config = ValidateConfig(
        detail_level=DetailLevel.STANDARD,
        severity_level=Severity.WARN,
        pseudo_parameter_overrides=PseudoParameterOverrides(region=region),
    )
    try:
        report = _first_pass_engine().validate_template(TemplateContent(json.dumps(template)), config)
    except Exception:  # the native validator failed: fall back to cfn-lint for everything
        return None
    if report.status != ReportStatus.OK:
        return None
    return {d.entity.logical_id for d in report.diagnostics if d.entity is not None and d.rule_id not in _ADVICE_ONLY}


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
    first_pass: bool = True,
) -> list[Finding]:
    """cfn-lint's findings on ``specs``, rendered as one template per region.

    Args:
        specs: The resources to check.
        catalog: Type knowledge (tag property shapes).
        neighbours: ``name -> (type, region)`` of resources the specs refer to that are not
            checked themselves; they become empty stand-ins in the template.
        first_pass: Screen with cloudformation-validate first and run cfn-lint only where it
            finds something or lacks cfn-lint's rules (False: cfn-lint on everything).
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
        whole = {"AWSTemplateFormatVersion": "2010-09-09", "Resources": resources}
        config, rules = _lint_runner(region)
        back = {lid: name for name, lid in ids.items() if name in names}
        template, checked = _for_cfn_lint(whole, group, ids, region) if first_pass else (whole, set(back))
        if template is None:
            continue
        # What the first pass cleared may still be in the template as a referred-to resource:
        # its findings were judged already (none), so only the checked resources report.
        back = {lid: name for lid, name in back.items() if lid in checked}
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


def _for_cfn_lint(
    template: dict[str, Any], group: Sequence[ResourceSpec], ids: Mapping[str, str], region: str
) -> tuple[dict[str, Any] | None, set[str]]:
    """The part of ``template`` cfn-lint must still see after the first pass, and whose findings count.

    It checks the resources the first pass flagged or cannot fully check. What they refer to
    stays in the template whole (cross-resource rules read the referred resource's properties),
    but findings located there are not reported, as for stand-ins. ``(None, set())`` when there
    is nothing left for cfn-lint.
    """
    resources: dict[str, Any] = template["Resources"]
    try:
        flagged = _flagged_by_first_pass(template, region)
        _first_pass_gaps(region)
    except ImportError:  # no native build of the first pass for this platform: cfn-lint checks everything
        flagged = None
    if flagged is None:
        return template, {ids[s.name] for s in group}
    wanted = {
        ids[s.name]
        for s in group
        if ids[s.name] in flagged
        or _only_cfn_lint_checks(s.type, resources[ids[s.name]].get("Properties") or {}, region)
    }
    if not wanted:
        return None, set()
    kept = set(wanted)
    for logical_id in wanted:
        kept.update(t for t in reference_targets(resources[logical_id].get("Properties")) if t in resources)
    return {**template, "Resources": {k: v for k, v in resources.items() if k in kept}}, wanted


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

"""CloudFormation's intrinsic functions, evaluated purely (no I/O).

One evaluator serves planning (templates and desired-state documents) and execution. What is
known when it runs is substituted; what is known only once another resource exists stays
*symbolic*: a ``{"Ref": name}``, ``{"Fn::GetAtt": [name, attr]}`` or a function over them
(``{"Fn::Sub": ...}``, ``{"Fn::Join": ...}``), in CloudFormation's own syntax, so the planner can
graph it, cfn-lint can read it, and execution can evaluate it again once the names resolve
(through :attr:`Context.resource_value`).

Behaviour follows the CloudFormation "Intrinsic function reference": ``Fn::Cidr``'s third
argument counts host bits, ``Fn::GetAZs ""`` is the current region's zones, ``Fn::Sub``'s
``${!Literal}`` is a literal ``${Literal}``, ``Ref AWS::NoValue`` removes the property.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "NO_VALUE",
    "PSEUDO_PARAMETERS",
    "Context",
    "TemplateError",
    "evaluate",
    "evaluate_condition",
    "is_symbolic",
    "sub_targets",
]

PSEUDO_PARAMETERS = frozenset(
    {
        "AWS::AccountId",
        "AWS::NotificationARNs",
        "AWS::NoValue",
        "AWS::Partition",
        "AWS::Region",
        "AWS::StackId",
        "AWS::StackName",
        "AWS::URLSuffix",
    }
)
FUNCTIONS = frozenset(
    {
        "Ref",
        "Fn::GetAtt",
        "Fn::Sub",
        "Fn::Join",
        "Fn::Select",
        "Fn::Split",
        "Fn::GetAZs",
        "Fn::Cidr",
        "Fn::FindInMap",
        "Fn::If",
        "Fn::Equals",
        "Fn::And",
        "Fn::Or",
        "Fn::Not",
        "Fn::Base64",
        "Fn::Length",
        "Fn::ToJsonString",
    }
)
# ${Name}, ${Name.Attr}, and the escape ${!Literal}; Sub variables may hold "::" (AWS::Region).
_SUB_VAR = re.compile(r"\$\{([^}]*)\}")


class _NoValue:
    """The value of ``Ref AWS::NoValue``: the enclosing property (or list item) is removed."""

    def __repr__(self) -> str:
        return "NO_VALUE"


NO_VALUE: Any = _NoValue()


class TemplateError(Exception):
    """An intrinsic function that cannot be evaluated; ``path`` locates it (JSON pointer)."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.path = path


def _default_azs(region: str) -> list[str]:
    # What CloudFormation answers for a default account: the region's zones a, b, c.
    return [f"{region}{suffix}" for suffix in "abc"]


@dataclass(slots=True)
class Context:
    """What an evaluation may know.

    Attributes:
        parameters: Parameter values, already checked against their declarations.
        pseudo: Pseudo parameter values (``AWS::Region`` ...); the region is also GetAZs' default.
        resources: Logical names of resources: a ``Ref`` to one stays symbolic (unless
            ``resource_value`` knows it).
        conditions: Condition name -> its (unevaluated) definition; evaluated on first use.
        mappings: The template's ``Mappings``.
        azs: Availability zones of a region (``Fn::GetAZs``).
        resource_value: ``(name, attribute or None) -> value``, or None while unknown. Execution
            passes one that reads state; planning passes none, so references stay symbolic.
        secret_parameters: ``NoEcho`` parameter names; where one lands is recorded in ``secret_paths``.
        secret_paths: Filled during evaluation: pointers of values derived from a secret parameter.
        zone_paths: Filled during evaluation: pointers of values ``Fn::GetAZs`` produced (no zone
            was hard-coded there, whatever a linter of the evaluated value thinks).
    """

    parameters: Mapping[str, Any] = field(default_factory=dict)
    pseudo: Mapping[str, Any] = field(default_factory=dict)
    resources: frozenset[str] | set[str] = frozenset()
    conditions: Mapping[str, Any] = field(default_factory=dict)
    mappings: Mapping[str, Any] = field(default_factory=dict)
    azs: Callable[[str], list[str]] = _default_azs
    resource_value: Callable[[str, str | None], Any] | None = None
    secret_parameters: frozenset[str] = frozenset()
    secret_paths: set[str] = field(default_factory=set)
    zone_paths: set[str] = field(default_factory=set)
    _condition_values: dict[str, bool] = field(default_factory=dict)
    _evaluating: set[str] = field(default_factory=set)


def is_symbolic(value: Any) -> bool:
    """Whether ``value`` (or something inside it) is still an unevaluated reference or function."""
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)) in FUNCTIONS:
            return True
        return any(is_symbolic(v) for v in value.values())
    if isinstance(value, list):
        return any(is_symbolic(v) for v in value)
    return False


def _function(node: Any) -> str | None:
    if type(node) is dict and len(node) == 1:
        key = next(iter(node))
        # {"Condition": name} is a function only inside conditions (see _truth); elsewhere it is
        # data, e.g. a property of that name.
        if key in FUNCTIONS or key.startswith("Fn::"):
            return str(key)
    return None


def evaluate(value: Any, ctx: Context, path: str = "") -> Any:
    """Evaluate every intrinsic function in ``value``.

    Returns:
        The value with functions replaced by their results; symbolic where a result depends on
        a resource not known yet. :data:`NO_VALUE` when the whole value is ``AWS::NoValue``.

    Raises:
        TemplateError: a malformed or unsupported function, a missing parameter, mapping key or
            condition, an index out of range.
    """
    name = _function(value)
    if name is not None:
        handler = _HANDLERS.get(name)
        if handler is None:
            raise TemplateError(f"{name} is not supported here", path)
        return handler(value[name], ctx, path)
    if isinstance(value, dict):
        result: dict[str, Any] = {}
        for key, child in value.items():
            evaluated = evaluate(child, ctx, f"{path}/{_escape(key)}")
            if evaluated is not NO_VALUE:
                result[key] = evaluated
        return result
    if isinstance(value, list):
        items = [evaluate(child, ctx, f"{path}/{i}") for i, child in enumerate(value)]
        return [item for item in items if item is not NO_VALUE]
    return value


def _escape(segment: Any) -> str:
    return str(segment).replace("~", "~0").replace("/", "~1")


# -- references --------------------------------------------------------------------------------


def _ref(arg: Any, ctx: Context, path: str) -> Any:
    if not isinstance(arg, str) or not arg:
        raise TemplateError("Ref takes the name of a parameter, resource or pseudo parameter", path)
    if arg in ctx.parameters:
        if arg in ctx.secret_parameters:
            ctx.secret_paths.add(path)
        return ctx.parameters[arg]
    if arg == "AWS::NoValue":
        return NO_VALUE
    if arg in PSEUDO_PARAMETERS:
        if arg in ctx.pseudo:
            return ctx.pseudo[arg]
        return {"Ref": arg}
    if arg.startswith("AWS::"):
        raise TemplateError(f"Unknown pseudo parameter {arg}", path)
    if arg in ctx.resources or ctx.resource_value is not None:
        return _resource(arg, None, ctx, path)
    raise TemplateError(f"Ref {arg!r} names no parameter or resource", path)


def _resource(name: str, attribute: str | None, ctx: Context, path: str) -> Any:
    if ctx.resource_value is not None:
        found = ctx.resource_value(name, attribute)
        if found is not None:
            return found
    return {"Ref": name} if attribute is None else {"Fn::GetAtt": [name, attribute]}


def _get_att(arg: Any, ctx: Context, path: str) -> Any:
    if isinstance(arg, str) and "." in arg:
        target, _, attribute = arg.partition(".")
        arg = [target, attribute]
    if not isinstance(arg, list) or len(arg) != 2 or not isinstance(arg[0], str):
        raise TemplateError("Fn::GetAtt takes [resource, attribute] or 'resource.attribute'", path)
    attribute = evaluate(arg[1], ctx, path)
    if not isinstance(attribute, str) or not attribute:
        raise TemplateError("Fn::GetAtt's attribute must be a string", path)
    if arg[0] not in ctx.resources and ctx.resource_value is None:
        raise TemplateError(f"Fn::GetAtt names {arg[0]!r}, which is not a resource", path)
    return _resource(arg[0], attribute, ctx, path)


# -- strings -----------------------------------------------------------------------------------


def _as_text(value: Any, what: str, path: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise TemplateError(f"{what} needs strings, got {type(value).__name__}", path)


def sub_targets(template: str, variables: Mapping[str, Any] | None = None) -> list[tuple[str, str | None]]:
    """The resources an ``Fn::Sub`` string names implicitly: ``(name, attribute or None)``.

    Variables of the explicit map, pseudo parameters and ``${!Literal}`` escapes are left out.
    """
    found: list[tuple[str, str | None]] = []
    for match in _SUB_VAR.finditer(template):
        var = match.group(1).strip()
        if not var or var.startswith(("!", "AWS::")) or (variables and var in variables):
            continue
        name, dot, attribute = var.partition(".")
        found.append((name, attribute if dot else None))
    return found


def _sub(arg: Any, ctx: Context, path: str) -> Any:
    if isinstance(arg, str):
        template, raw_vars = arg, {}
    elif isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str) and isinstance(arg[1], dict):
        template, raw_vars = arg
    else:
        raise TemplateError("Fn::Sub takes a string or [string, {variable: value}]", path)
    variables = {k: evaluate(v, ctx, path) for k, v in raw_vars.items()}
    kept_vars: dict[str, Any] = {}

    def replace(match: re.Match[str]) -> str:
        var = match.group(1).strip()
        if var.startswith("!"):
            return match.group(0)  # an escape: stays for the final pass, which unescapes it
        if var in variables:
            value = variables[var]
            if is_symbolic(value):
                kept_vars[var] = value
                return match.group(0)
            return _as_text(value, "Fn::Sub", path).replace("${", "${!")
        if "." not in var and var in ctx.parameters:
            return _as_text(_ref(var, ctx, path), "Fn::Sub", path).replace("${", "${!")
        if var in PSEUDO_PARAMETERS:
            value = _ref(var, ctx, path)
            return match.group(0) if is_symbolic(value) else _as_text(value, "Fn::Sub", path)
        name, dot, attribute = var.partition(".")
        if name in ctx.resources or ctx.resource_value is not None:
            value = _resource(name, attribute if dot else None, ctx, path)
            return match.group(0) if is_symbolic(value) else _as_text(value, "Fn::Sub", path)
        raise TemplateError(f"Fn::Sub variable ${{{var}}} names no parameter, resource or variable", path)

    text = _SUB_VAR.sub(replace, template)
    if any(not m.group(1).strip().startswith("!") for m in _SUB_VAR.finditer(text)):
        return {"Fn::Sub": [text, kept_vars] if kept_vars else text}
    return _SUB_VAR.sub(lambda m: "${" + m.group(1).strip()[1:] + "}", text)


def _join(arg: Any, ctx: Context, path: str) -> Any:
    if not isinstance(arg, list) or len(arg) != 2:
        raise TemplateError("Fn::Join takes [delimiter, [values]]", path)
    delimiter = evaluate(arg[0], ctx, path)
    items = evaluate(arg[1], ctx, path)
    if not isinstance(delimiter, str):
        raise TemplateError("Fn::Join's delimiter must be a string", path)
    if _function(items) is not None:
        return {"Fn::Join": [delimiter, items]}
    if not isinstance(items, list):
        raise TemplateError("Fn::Join's second argument must be a list", path)
    if any(is_symbolic(item) for item in items):
        return {"Fn::Join": [delimiter, items]}
    return delimiter.join(_as_text(item, "Fn::Join", path) for item in items)


def _split(arg: Any, ctx: Context, path: str) -> Any:
    if not isinstance(arg, list) or len(arg) != 2:
        raise TemplateError("Fn::Split takes [delimiter, string]", path)
    delimiter, source = evaluate(arg[0], ctx, path), evaluate(arg[1], ctx, path)
    if not isinstance(delimiter, str) or not delimiter:
        raise TemplateError("Fn::Split's delimiter must be a non-empty string", path)
    if is_symbolic(source):
        return {"Fn::Split": [delimiter, source]}
    return _as_text(source, "Fn::Split", path).split(delimiter)


def _base64(arg: Any, ctx: Context, path: str) -> Any:
    value = evaluate(arg, ctx, path)
    if is_symbolic(value):
        return {"Fn::Base64": value}
    return base64.b64encode(_as_text(value, "Fn::Base64", path).encode()).decode("ascii")


def _to_json_string(arg: Any, ctx: Context, path: str) -> Any:
    value = evaluate(arg, ctx, path)
    if not isinstance(value, dict | list):
        raise TemplateError("Fn::ToJsonString takes an object or a list", path)
    if is_symbolic(value):
        return {"Fn::ToJsonString": value}
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# -- lists -------------------------------------------------------------------------------------


def _index(value: Any, path: str) -> int:
    if isinstance(value, bool):
        raise TemplateError("Fn::Select's index must be a number", path)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise TemplateError("Fn::Select's index must be a number", path) from None


def _select(arg: Any, ctx: Context, path: str) -> Any:
    if not isinstance(arg, list) or len(arg) != 2:
        raise TemplateError("Fn::Select takes [index, [values]]", path)
    index = _index(evaluate(arg[0], ctx, path), path)
    items = evaluate(arg[1], ctx, path)
    if _function(items) is not None:
        return {"Fn::Select": [index, items]}
    if not isinstance(items, list):
        raise TemplateError("Fn::Select's second argument must be a list", path)
    if not 0 <= index < len(items):
        raise TemplateError(f"Fn::Select index {index} is out of range for {len(items)} value(s)", path)
    return items[index]


def _length(arg: Any, ctx: Context, path: str) -> Any:
    items = evaluate(arg, ctx, path)
    if _function(items) is not None:
        return {"Fn::Length": items}
    if not isinstance(items, list):
        raise TemplateError("Fn::Length takes a list", path)
    return len(items)


def _get_azs(arg: Any, ctx: Context, path: str) -> Any:
    region = evaluate(arg, ctx, path)
    if region == "" or region is None:
        region = ctx.pseudo.get("AWS::Region")
    if not isinstance(region, str) or not region:
        return {"Fn::GetAZs": arg}
    ctx.zone_paths.add(path)
    return list(ctx.azs(region))


def _cidr(arg: Any, ctx: Context, path: str) -> Any:
    if not isinstance(arg, list) or len(arg) != 3:
        raise TemplateError("Fn::Cidr takes [ipBlock, count, cidrBits]", path)
    block, count, bits = (evaluate(a, ctx, path) for a in arg)
    if is_symbolic(block) or is_symbolic(count) or is_symbolic(bits):
        return {"Fn::Cidr": [block, count, bits]}
    try:
        network = ipaddress.ip_network(str(block), strict=False)
        count, bits = int(count), int(bits)
    except ValueError as exc:
        raise TemplateError(f"Fn::Cidr: {exc}", path) from None
    # cidrBits is the number of host bits of each subnet: /24 subnets of an IPv4 block are 8.
    prefix = network.max_prefixlen - bits
    if not 1 <= count <= 256 or bits < 0 or prefix < network.prefixlen:
        raise TemplateError(f"Fn::Cidr cannot make {count} subnet(s) with {bits} host bits from {network}", path)
    subnets = []
    for subnet in network.subnets(new_prefix=prefix):
        subnets.append(str(subnet))
        if len(subnets) == count:
            break
    if len(subnets) < count:
        raise TemplateError(f"Fn::Cidr: {network} holds only {len(subnets)} subnet(s) of /{prefix}", path)
    return subnets


def _find_in_map(arg: Any, ctx: Context, path: str) -> Any:
    if not isinstance(arg, list) or len(arg) != 3:
        raise TemplateError("Fn::FindInMap takes [MapName, TopLevelKey, SecondLevelKey]", path)
    keys = [evaluate(a, ctx, path) for a in arg]
    if any(not isinstance(k, str | int) or isinstance(k, bool) for k in keys):
        raise TemplateError("Fn::FindInMap's keys must be strings", path)
    node: Any = ctx.mappings
    for depth, key in enumerate(keys):
        if not isinstance(node, dict) or str(key) not in node:
            what = ("mapping", "top-level key", "second-level key")[depth]
            raise TemplateError(f"Fn::FindInMap: no {what} {key!r}", path)
        node = node[str(key)]
    return node


# -- conditions --------------------------------------------------------------------------------


def evaluate_condition(name: str, ctx: Context, path: str = "") -> bool:
    """The value of the named condition (each evaluated once; a cycle is an error).

    Raises:
        TemplateError: unknown condition, a cycle, or a definition that is not a condition function.
    """
    if name in ctx._condition_values:
        return ctx._condition_values[name]
    if name not in ctx.conditions:
        raise TemplateError(f"Unknown condition {name!r}", path)
    if name in ctx._evaluating:
        raise TemplateError(f"Condition {name!r} refers to itself", path)
    ctx._evaluating.add(name)
    try:
        value = _truth(ctx.conditions[name], ctx, f"/Conditions/{_escape(name)}")
    finally:
        ctx._evaluating.discard(name)
    ctx._condition_values[name] = value
    return value


def _truth(node: Any, ctx: Context, path: str) -> bool:
    if isinstance(node, bool):
        return node
    if isinstance(node, str) and node in ("true", "false"):
        return node == "true"
    name = "Condition" if type(node) is dict and list(node) == ["Condition"] else _function(node)
    if name not in ("Fn::Equals", "Fn::And", "Fn::Or", "Fn::Not", "Condition"):
        raise TemplateError("A condition must be Fn::Equals, Fn::And, Fn::Or, Fn::Not or Condition", path)
    result = _HANDLERS[name](node[name], ctx, path)
    if not isinstance(result, bool):
        raise TemplateError(f"{name} depends on a value known only after apply; conditions cannot", path)
    return result


def _condition(arg: Any, ctx: Context, path: str) -> bool:
    if not isinstance(arg, str):
        raise TemplateError("Condition takes a condition name", path)
    return evaluate_condition(arg, ctx, path)


def _comparable(value: Any) -> Any:
    # CloudFormation compares the values as written: "1" and 1 are the same parameter value.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _equals(arg: Any, ctx: Context, path: str) -> Any:
    if not isinstance(arg, list) or len(arg) != 2:
        raise TemplateError("Fn::Equals takes [value, value]", path)
    left, right = (evaluate(a, ctx, path) for a in arg)
    if is_symbolic(left) or is_symbolic(right):
        return {"Fn::Equals": [left, right]}
    return _comparable(left) == _comparable(right)


def _conditions_list(arg: Any, name: str, ctx: Context, path: str) -> list[bool]:
    if not isinstance(arg, list) or not 2 <= len(arg) <= 10:
        raise TemplateError(f"{name} takes 2 to 10 conditions", path)
    return [_truth(item, ctx, path) for item in arg]


def _and(arg: Any, ctx: Context, path: str) -> bool:
    return all(_conditions_list(arg, "Fn::And", ctx, path))


def _or(arg: Any, ctx: Context, path: str) -> bool:
    return any(_conditions_list(arg, "Fn::Or", ctx, path))


def _not(arg: Any, ctx: Context, path: str) -> bool:
    if not isinstance(arg, list) or len(arg) != 1:
        raise TemplateError("Fn::Not takes [condition]", path)
    return not _truth(arg[0], ctx, path)


def _if(arg: Any, ctx: Context, path: str) -> Any:
    if not isinstance(arg, list) or len(arg) != 3 or not isinstance(arg[0], str):
        raise TemplateError("Fn::If takes [condition name, value if true, value if false]", path)
    chosen = arg[1] if evaluate_condition(arg[0], ctx, path) else arg[2]
    return evaluate(chosen, ctx, path)


def _refuse(name: str) -> Callable[[Any, Context, str], Any]:
    def handler(_arg: Any, _ctx: Context, path: str) -> Any:
        raise TemplateError(f"{name} is not supported: each project is planned on its own", path)

    return handler


_HANDLERS: dict[str, Callable[[Any, Context, str], Any]] = {
    "Ref": _ref,
    "Fn::GetAtt": _get_att,
    "Fn::Sub": _sub,
    "Fn::Join": _join,
    "Fn::Select": _select,
    "Fn::Split": _split,
    "Fn::GetAZs": _get_azs,
    "Fn::Cidr": _cidr,
    "Fn::FindInMap": _find_in_map,
    "Fn::If": _if,
    "Fn::Equals": _equals,
    "Fn::And": _and,
    "Fn::Or": _or,
    "Fn::Not": _not,
    "Fn::Base64": _base64,
    "Fn::Length": _length,
    "Fn::ToJsonString": _to_json_string,
    "Condition": _condition,
    "Fn::ImportValue": _refuse("Fn::ImportValue (outputs of other stacks)"),
}

"""References between resources: ``{"Ref": name}`` and ``{"Fn::GetAtt": [name, attr]}``.

``Ref`` stands for the other resource's primary identifier, ``Fn::GetAtt`` for one of its
properties (``"name.attr"`` is accepted as the string form). Names starting with ``AWS::`` are
CloudFormation pseudo parameters (``AWS::Region``), not resources.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from infra_mcp.domain.template.intrinsics import sub_targets


@dataclass(frozen=True, slots=True)
class Reference:
    """One reference found in a property tree.

    Attributes:
        path: JSON pointer of the referring value, relative to the properties (``/VpcId``).
        target: The logical name referred to.
        attribute: The attribute for ``Fn::GetAtt``; None for ``Ref``.
        malformed: Why the reference cannot be understood, or "" when it is well formed.
    """

    path: str
    target: str
    attribute: str | None = None
    malformed: str = ""


def escape(segment: str | int) -> str:
    """Escape one JSON-pointer segment (RFC 6901)."""
    return str(segment).replace("~", "~0").replace("/", "~1")


def is_pseudo(name: str) -> bool:
    return name.startswith("AWS::")


def as_reference(value: Any, path: str = "") -> Reference | None:
    """The reference ``value`` is, if it is a one-key ``Ref`` / ``Fn::GetAtt`` object."""
    if not isinstance(value, dict) or len(value) != 1:
        return None
    if "Ref" in value:
        target = value["Ref"]
        if isinstance(target, str) and target:
            return Reference(path, target)
        return Reference(path, str(target), malformed="Ref must name a resource: {'Ref': 'web-vpc'}")
    if "Fn::GetAtt" in value:
        spec = value["Fn::GetAtt"]
        if isinstance(spec, str) and "." in spec:
            target, _, attribute = spec.partition(".")
            if target and attribute:
                return Reference(path, target, attribute)
        if isinstance(spec, list) and len(spec) == 2 and all(isinstance(part, str) and part for part in spec):
            return Reference(path, spec[0], spec[1])
        return Reference(
            path,
            str(spec),
            malformed="Fn::GetAtt must be [name, attribute] or 'name.attribute', e.g. ['web-vpc', 'VpcId']",
        )
    return None


def sub_references(node: dict[str, Any], path: str = "") -> list[Reference]:
    """The resources an ``{"Fn::Sub": ...}`` names inside its string (``${name}``, ``${name.attr}``)."""
    arg = node.get("Fn::Sub")
    if isinstance(arg, str):
        text, variables = arg, None
    elif isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str) and isinstance(arg[1], dict):
        text, variables = arg[0], arg[1]
    else:
        return []
    return [Reference(path, name, attribute) for name, attribute in sub_targets(text, variables)]


def iter_references(value: Any, path: str = "") -> Iterator[Reference]:
    """Every reference in a property tree, with its JSON pointer. Iterative (deep trees are fine).

    ``Fn::Sub`` strings count: ``"${bucket.Arn}/*"`` refers to ``bucket``.
    """
    work: list[tuple[Any, str]] = [(value, path)]
    while work:
        node, where = work.pop()
        if isinstance(node, dict):
            ref = as_reference(node, where)
            if ref is not None:
                yield ref
                continue
            if len(node) == 1 and "Fn::Sub" in node:
                yield from sub_references(node, where)
            for key, child in node.items():
                if isinstance(child, dict | list):
                    work.append((child, f"{where}/{escape(key)}"))
        elif isinstance(node, list):
            for i, child in enumerate(node):
                if isinstance(child, dict | list):
                    work.append((child, f"{where}/{i}"))


def reference_targets(value: Any) -> set[str]:
    """The names a property tree refers to (pseudo parameters and malformed references left out)."""
    return {r.target for r in iter_references(value) if not r.malformed and not is_pseudo(r.target)}


def scan_targets(value: Any) -> tuple[set[str], bool]:
    """Fast walk: the names a property tree refers to, and whether any reference is malformed.

    The planner runs this on every resource of a desired state (100,000 of them), so it builds
    no paths; :func:`iter_references` gives the locations when a finding needs them.
    """
    targets: set[str] = set()
    malformed = False
    stack: list[Any] = [value]
    while stack:
        node = stack.pop()
        if type(node) is dict:
            if len(node) == 1:
                if "Ref" in node or "Fn::GetAtt" in node:
                    ref = as_reference(node)
                    if ref is None or ref.malformed:
                        malformed = True
                    elif not ref.target.startswith("AWS::"):
                        targets.add(ref.target)
                    continue
                if "Fn::Sub" in node:
                    targets.update(r.target for r in sub_references(node))
            for child in node.values():
                if type(child) is dict or type(child) is list:
                    stack.append(child)
        elif type(node) is list:
            for child in node:
                if type(child) is dict or type(child) is list:
                    stack.append(child)
    return targets, malformed

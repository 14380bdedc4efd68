"""The desired-state document (DESIGN §2): parse, validate, resolve references into a graph.

:func:`parse_desired_state` turns ``{"resources": [...]}`` into :class:`ResourceSpec` objects or
raises ``VALIDATION_001`` listing *every* problem (capped at :data:`MAX_FINDINGS_SHOWN`, with the
total), each with the resource name and a JSON pointer into the document. It is one pass over the
document plus one over the graph, so 100,000 resources with 1,000 scattered faults are reported in
about the time it takes to read them.

There is no size limit here: a large valid document is planned, not refused. The transport's own
message-size limit is the only ceiling.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn

from infra_mcp.domain.graph import blocked_by_cycles, find_cycles
from infra_mcp.domain.paths import transform_at
from infra_mcp.domain.plan import Finding, ResourceSpec
from infra_mcp.domain.refs import escape, is_pseudo, iter_references, scan_targets
from infra_mcp.domain.sealed import DIGEST_KEY, digest_markers, is_sealed, is_secret_digest, secret_digest
from infra_mcp.domain.template.intrinsics import is_symbolic
from infra_mcp.domain.type_catalog import TypeCatalog
from infra_mcp.domain.typefacts import type_facts
from infra_mcp.errors import ValidationFailed

MAX_FINDINGS_SHOWN = 200
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")
REGION_PATTERN = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]+")
_ENTRY_KEYS = frozenset({"name", "type", "region", "properties", "tags", "depends_on"})


class SpecList(list[ResourceSpec]):
    """The parsed resources, carrying the dependency graph found while checking them.

    A plain list to every caller; the planner reuses ``graph`` instead of walking 100,000
    property trees a second time.
    """

    graph: dict[str, set[str]] | None = None


def _where(finding: Finding) -> str:
    """``sub at /properties/CidrBlock``: the resource, then the path (glued together they read as one path)."""
    if finding.resource and finding.path:
        return f"{finding.resource} at {finding.path}"
    return finding.resource or finding.path or "document"


def raise_findings(findings: list[Finding], what: str) -> NoReturn:
    """Raise ``VALIDATION_001`` with the first :data:`MAX_FINDINGS_SHOWN` findings and the total.

    Raises:
        ValidationFailed: always.
    """
    shown = findings[:MAX_FINDINGS_SHOWN]
    first = "; ".join(f"{_where(f)}: {f.message.rstrip('.')}" for f in shown[:3])
    more = f" (and {len(findings) - 3} more)" if len(findings) > 3 else ""
    raise ValidationFailed(
        f"The {what} has {len(findings)} problem(s): {first}{more}. Fix them all and plan again.",
        details={
            "findings": [f.model_dump(mode="json") for f in shown],
            "total": len(findings),
            "shown": len(shown),
        },
    )


class _Parser:
    """One parse: catalog answers cached per (type, region), findings accumulated."""

    def __init__(self, catalog: TypeCatalog, default_region: str) -> None:
        self.catalog = catalog
        self.default_region = default_region
        self.findings: list[Finding] = []
        self._types: dict[tuple[str, str], str | list[str]] = {}
        self._regions: set[str] | None = None
        self._good_regions: set[str] = set()

    def error(self, message: str, *, path: str, resource: str | None = None, rule: str = "document") -> None:
        self.findings.append(Finding(severity="error", resource=resource, path=path, rule=rule, message=message))

    def known_region(self, region: str) -> bool:
        if self._regions is None:
            self._regions = set(self.catalog.regions())
        return region in self._regions

    def normalize_type(self, type_name: str, region: str) -> str | list[str]:
        """Canonical type name, or the catalog's suggestions when it is unknown."""
        key = (type_name, region)
        cached = self._types.get(key)
        if cached is None:
            try:
                cached = self.catalog.normalize(type_name, region)
            except ValidationFailed as exc:
                cached = list(exc.details.get("suggestions") or [])
            self._types[key] = cached
        return cached

    def entry(self, index: int, entry: Any) -> ResourceSpec | None:
        base = f"/resources/{index}"
        if not isinstance(entry, dict):
            self.error(f"Each resource must be an object, got {type(entry).__name__}.", path=base)
            return None
        ok = True
        name = entry.get("name")
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            shown = name if isinstance(name, str) else None
            self.error(
                "Each resource needs a 'name': 1-128 letters, digits, '-' or '_', e.g. 'web-vpc'."
                if name is None
                else f"Invalid name {str(name)[:80]!r}: use 1-128 letters, digits, '-' or '_'.",
                path=f"{base}/name",
                resource=shown[:128] if shown else None,
            )
            ok = False
            name = None
        label = name
        unknown_keys = [k for k in entry if k not in _ENTRY_KEYS]
        if unknown_keys:
            self.error(
                f"Unknown key(s) {sorted(map(str, unknown_keys))[:5]}; a resource has name, type, region, "
                "properties, tags, depends_on.",
                path=f"{base}/{unknown_keys[0]}",
                resource=label,
            )
            ok = False

        region = entry.get("region", self.default_region)
        if not isinstance(region, str) or not REGION_PATTERN.fullmatch(region) or not self.known_region(region):
            self.error(
                f"Unknown region {str(region)[:40]!r}; use an AWS region name such as 'us-east-1'.",
                path=f"{base}/region",
                resource=label,
            )
            ok = False
            region = self.default_region

        type_name = entry.get("type")
        canonical: str | None = None
        if not isinstance(type_name, str) or not type_name.strip():
            self.error("Each resource needs a 'type', e.g. 'AWS::EC2::VPC'.", path=f"{base}/type", resource=label)
            ok = False
        else:
            answer = self.normalize_type(type_name, region)
            if isinstance(answer, str):
                canonical = answer
            else:
                hint = f" Did you mean {', '.join(answer)}?" if answer else ""
                self.findings.append(
                    Finding(
                        resource=label,
                        path=f"{base}/type",
                        rule="unknown-type",
                        message=f"Unknown resource type {type_name[:100]!r} in {region}.{hint}",
                    )
                )
                ok = False

        properties = entry.get("properties", {})
        if properties is None:
            properties = {}
        if not isinstance(properties, dict):
            self.error("'properties' must be an object.", path=f"{base}/properties", resource=label)
            ok = False
            properties = {}

        tags = entry.get("tags", {})
        if tags is None:
            tags = {}
        if not isinstance(tags, dict):
            self.error("'tags' must be an object of string keys to string values.", path=f"{base}/tags", resource=label)
            ok = False
            tags = {}
        else:
            for key, value in tags.items():
                if not isinstance(value, str) or not key or len(key) > 128 or len(value) > 256:
                    self.error(
                        "Tag values must be strings (keys 1-128 characters, values up to 256).",
                        path=f"{base}/tags/{escape(key)}",
                        resource=label,
                    )
                    ok = False

        depends_on = entry.get("depends_on", [])
        if depends_on is None:
            depends_on = []
        if not isinstance(depends_on, list) or not all(isinstance(d, str) for d in depends_on):
            self.error("'depends_on' must be a list of resource names.", path=f"{base}/depends_on", resource=label)
            ok = False
            depends_on = []

        if not ok or name is None or canonical is None:
            return None
        return ResourceSpec(
            name=name,
            type=canonical,
            region=region,
            properties=properties,
            tags=tags,
            depends_on=list(dict.fromkeys(depends_on)),
        )

    def quick(self, entry: Any) -> ResourceSpec | None:
        """The spec of a well-formed entry, cheaply; None sends it to :meth:`entry` for findings.

        Nearly every entry of a large document is well formed, so this path does the fewest
        checks that still prove it; anything unusual takes the thorough path.
        """
        if type(entry) is not dict or not entry.keys() <= _ENTRY_KEYS:
            return None
        name = entry.get("name")
        if type(name) is not str or not NAME_PATTERN.fullmatch(name):
            return None
        region = entry.get("region", self.default_region)
        if region not in self._good_regions:
            if type(region) is not str or not REGION_PATTERN.fullmatch(region) or not self.known_region(region):
                return None
            self._good_regions.add(region)
        type_name = entry.get("type")
        canonical = self._types.get((type_name, region)) if type(type_name) is str else None
        if type(canonical) is not str:
            if type(type_name) is not str or not type_name.strip():
                return None
            canonical = self.normalize_type(type_name, region)
            if type(canonical) is not str:
                return None
        properties = entry.get("properties")
        tags = entry.get("tags")
        depends_on = entry.get("depends_on")
        properties = {} if properties is None else properties
        tags = {} if tags is None else tags
        depends_on = [] if depends_on is None else depends_on
        if type(properties) is not dict or type(tags) is not dict or type(depends_on) is not list:
            return None
        for key, value in tags.items():
            if type(value) is not str or not key or len(key) > 128 or len(value) > 256:
                return None
        for dep in depends_on:
            if type(dep) is not str:
                return None
        # Every field was checked above, so pydantic's checks would only repeat them (a third of
        # this path's time). The result is the validated model's equal, same fields set.
        return _checked_spec(
            name, canonical, region, properties, tags, list(dict.fromkeys(depends_on)) if depends_on else []
        )


_GIVEN = ("name", "type", "region", "properties", "tags", "depends_on")


def _spec_maker() -> Callable[..., ResourceSpec]:
    """``ResourceSpec.model_construct`` for the six fields :meth:`_Parser.quick` checks, made cheap.

    ``model_construct`` looks every field up by alias and default on each call: about half of
    parsing a 100,000-resource document. Where the model is plain (no aliases, no post-init
    hook, the other fields defaulting to constants), the same instance is set up directly: same
    values in the same order, same fields set. Anything else keeps ``model_construct``
    (tests/unit/test_desired.py compares the two).
    """
    fields = ResourceSpec.model_fields
    rest = {n: f for n, f in fields.items() if n not in _GIVEN}
    plain = (
        tuple(fields)[: len(_GIVEN)] == _GIVEN
        and not ResourceSpec.__pydantic_post_init__
        and ResourceSpec.model_config.get("extra") != "allow"
        and all(f.alias is None and f.validation_alias is None for f in fields.values())
        and all(f.default_factory is None and (f.default is None or type(f.default) is str) for f in rest.values())
    )
    if not plain:

        def construct(*values: Any) -> ResourceSpec:
            return ResourceSpec.model_construct(**dict(zip(_GIVEN, values, strict=True)))

        return construct
    defaults = tuple((n, f.default) for n, f in rest.items())
    new, put = ResourceSpec.__new__, object.__setattr__

    def make(name: str, type_: str, region: str, properties: Any, tags: Any, depends_on: list[str]) -> ResourceSpec:
        spec = new(ResourceSpec)
        values = {
            "name": name,
            "type": type_,
            "region": region,
            "properties": properties,
            "tags": tags,
            "depends_on": depends_on,
        }
        values.update(defaults)
        put(spec, "__dict__", values)
        put(spec, "__pydantic_fields_set__", set(_GIVEN))
        put(spec, "__pydantic_extra__", None)
        put(spec, "__pydantic_private__", None)
        return spec

    return make


_checked_spec = _spec_maker()


def parse_desired_state(
    document: Any,
    catalog: TypeCatalog,
    *,
    default_region: str = "us-east-1",
    external_names: Iterable[str] = (),
    problems: list[Finding] | None = None,
) -> list[ResourceSpec]:
    """Parse and validate a whole desired-state document.

    Args:
        document: The decoded JSON document, ``{"resources": [...]}``.
        catalog: Resource type knowledge (type names, suggestions).
        default_region: Region of entries that name none.
        external_names: Names that references may also point at (resources of the current
            state, for one-resource plans). A full desired state passes none: whatever it
            does not declare is going to be deleted.
        problems: When given, the findings of well-formed documents are added here instead of
            raised, and the resources that parsed are returned, so a caller can validate them
            too and report everything in one answer.

    Returns:
        The resources, in document order, types normalised (``EC2::VPC`` -> ``AWS::EC2::VPC``).

    Raises:
        ValidationFailed: VALIDATION_001 with ``details = {"findings", "total", "shown"}``.
    """
    parser = _Parser(catalog, default_region)
    if not isinstance(document, dict):
        parser.error(f"The desired state must be an object with 'resources', got {type(document).__name__}.", path="")
        raise_findings(parser.findings, "desired state")
    resources = document.get("resources")
    if not isinstance(resources, list):
        parser.error(
            "The desired state needs 'resources': a list of {name, type, properties, ...} objects.",
            path="/resources",
        )
        raise_findings(parser.findings, "desired state")
    extra = [k for k in document if k != "resources"]
    if extra:
        parser.error(f"Unknown top-level key(s) {sorted(map(str, extra))[:5]}; only 'resources' is read.", path="")

    specs: list[ResourceSpec] = []
    indexes: dict[str, int] = {}
    for index, entry in enumerate(resources):
        spec = parser.quick(entry)
        if spec is not None:
            name: str | None = spec.name  # the quick path matched it against NAME_PATTERN already
        else:
            spec = parser.entry(index, entry)
            name = entry.get("name") if isinstance(entry, dict) else None
            if not (isinstance(name, str) and NAME_PATTERN.fullmatch(name)):
                name = None
        if name is not None:
            if name in indexes:
                parser.error(
                    f"Duplicate name {name!r} (first at /resources/{indexes[name]}); names are unique in a project.",
                    path=f"/resources/{index}/name",
                    resource=name,
                )
                continue
            indexes[name] = index
        if spec is not None:
            specs.append(spec)

    graph = check_references(specs, indexes, parser.findings, external_names=set(external_names))
    if parser.findings:
        parser.findings.sort(key=_document_order)
        if problems is None:
            raise_findings(parser.findings, "desired state")
        problems.extend(parser.findings)
    result = SpecList(specs)
    result.graph = graph
    return result


def _document_order(finding: Finding) -> tuple[int, str]:
    parts = finding.path.split("/")
    position = int(parts[2]) if len(parts) > 2 and parts[1] == "resources" and parts[2].isdigit() else -1
    return position, finding.path


def check_references(
    specs: list[ResourceSpec],
    indexes: Mapping[str, int],
    findings: list[Finding],
    *,
    external_names: set[str],
) -> dict[str, set[str]]:
    """Check every reference and ``depends_on``; report dangling ones and cycles into ``findings``.

    Returns:
        The dependency graph of ``specs``: name -> names it depends on (refs and depends_on),
        including names in ``external_names``.
    """
    graph: dict[str, set[str]] = {}
    declared = indexes.keys()
    for spec in specs:
        deps, malformed = scan_targets(spec.properties)
        deps.update(spec.depends_on)
        if malformed or not (deps <= declared or deps <= (declared | external_names)):
            _reference_findings(spec, f"/resources/{indexes.get(spec.name, -1)}", declared, external_names, findings)
            deps = {d for d in deps if d in declared or d in external_names}
        graph[spec.name] = deps
    blocked = blocked_by_cycles(graph)
    if blocked:
        # Kahn's algorithm is cheap and finds *whether* there is a cycle; Tarjan's, run only on
        # what it could not order, says which resources form it.
        for cycle in find_cycles({name: graph[name] for name in blocked}):
            shown = cycle[:20]
            findings.append(
                Finding(
                    resource=cycle[0],
                    path=f"/resources/{indexes.get(cycle[0], -1)}",
                    rule="cycle",
                    message=f"Dependency cycle among {len(cycle)} resource(s): {', '.join(shown)}"
                    + (" ..." if len(cycle) > len(shown) else "")
                    + ". Remove a reference or depends_on between them.",
                )
            )
    return graph


def _reference_findings(
    spec: ResourceSpec, base: str, declared: Iterable[str], external_names: set[str], findings: list[Finding]
) -> None:
    for ref in iter_references(spec.properties):
        where = f"{base}/properties{ref.path}"
        if ref.malformed:
            findings.append(Finding(resource=spec.name, path=where, rule="ref", message=ref.malformed))
        elif not is_pseudo(ref.target) and ref.target not in declared and ref.target not in external_names:
            findings.append(
                Finding(
                    resource=spec.name,
                    path=where,
                    rule="dangling-ref",
                    message=f"References {ref.target!r}, which is not a resource in this desired state.",
                )
            )
    for i, target in enumerate(spec.depends_on):
        if target not in declared and target not in external_names:
            findings.append(
                Finding(
                    resource=spec.name,
                    path=f"{base}/depends_on/{i}",
                    rule="dangling-ref",
                    message=f"depends_on names {target!r}, which is not a resource in this desired state.",
                )
            )


def dependency_graph(specs: Iterable[ResourceSpec]) -> dict[str, set[str]]:
    """Name -> names it depends on, from references and ``depends_on`` (pseudo parameters left out)."""
    cached = getattr(specs, "graph", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    graph: dict[str, set[str]] = {}
    for spec in specs:
        deps, _ = scan_targets(spec.properties)
        deps.update(spec.depends_on)
        graph[spec.name] = deps
    return graph


def with_graph(parsed: Iterable[ResourceSpec], replaced: list[ResourceSpec]) -> list[ResourceSpec]:
    """``replaced`` (``parsed`` one for one, some properties rewritten) still carrying the parsed graph.

    Rewriting values (CloudFormation's scalar conversions, sealing secrets) keeps each resource's
    name; only the rewritten resources are walked again, so the planner never walks 100,000
    property trees a second time. Without a parsed graph, ``replaced`` is returned as it is.
    """
    graph = getattr(parsed, "graph", None)
    if graph is None:
        return replaced
    carried = SpecList(replaced)
    carried.graph = graph
    for before, after in zip(parsed, replaced, strict=True):
        if after is not before:
            if carried.graph is graph:
                carried.graph = dict(graph)
            deps, _ = scan_targets(after.properties)
            deps.update(after.depends_on)
            carried.graph[after.name] = deps
    return carried


def declared_properties(spec: ResourceSpec, catalog: TypeCatalog | None = None) -> dict[str, Any]:
    """The properties as state records them in ``declared``: secrets reduced to digests.

    Sealed markers become ``{"__secret_sha256__": hex}``. With a ``catalog``, a secret value
    that reached here unsealed (a caller that skipped sealing) is digested too, so ``declared``
    never holds a secret in clear. Write-only values that are not secrets are kept as declared.
    """
    declared: dict[str, Any] = dict(digest_markers(spec.properties))
    if catalog is None:
        return declared
    facts = type_facts(catalog, spec.type, spec.region)
    if not facts.secret:
        return declared
    return transform_at(declared, facts.secret, _digest_clear)


def _digest_clear(value: Any) -> Any:
    if is_secret_digest(value) or is_sealed(value) or is_symbolic(value):
        return value
    return {DIGEST_KEY: secret_digest(value)}

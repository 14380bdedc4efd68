"""The domain learns resource types through a port: a plan is computed from schemas held in a dict.

Production hands the domain the ``catalog`` package (registry schemas read from cfn-lint's data);
here a two-type catalog in memory is enough to parse, diff, order and validate a plan.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from infra_mcp.domain.cost import Quote
from infra_mcp.domain.desired import parse_desired_state
from infra_mcp.domain.plan import Action
from infra_mcp.domain.planner import make_plan
from infra_mcp.domain.type_catalog import ResourceTypeInfo, TypeCatalog
from infra_mcp.errors import InfraError, ValidationFailed

DOMAIN = Path(__file__).resolve().parents[2] / "src" / "infra_mcp" / "domain"

NETWORK: dict[str, Any] = {
    "typeName": "Test::Net::Network",
    "properties": {"Cidr": {"type": "string"}, "NetworkId": {"type": "string"}},
    "required": ["Cidr"],
    "primaryIdentifier": ["/properties/NetworkId"],
    "readOnlyProperties": ["/properties/NetworkId"],
    "createOnlyProperties": ["/properties/Cidr"],
}
ZONE: dict[str, Any] = {
    "typeName": "Test::Net::Zone",
    "properties": {"NetworkId": {"type": "string"}, "ZoneId": {"type": "string"}},
    "primaryIdentifier": ["/properties/ZoneId"],
    "readOnlyProperties": ["/properties/ZoneId"],
}


class DictCatalog:
    """Two made-up types, no files."""

    def __init__(self) -> None:
        self._types = {s["typeName"]: ResourceTypeInfo(s["typeName"], s) for s in (NETWORK, ZONE)}

    def normalize(self, type_name: str, region: str | None = None) -> str:
        if type_name not in self._types:
            raise ValidationFailed(f"Unknown type {type_name}. Use one of {sorted(self._types)}.")
        return type_name

    def get(self, type_name: str, region: str | None = None) -> ResourceTypeInfo:
        return self._types[self.normalize(type_name, region)]

    @staticmethod
    def regions() -> list[str]:
        return ["us-east-1"]


class NoPrices:
    """A pricing port with nothing in it (the bundled table is a file: the catalog package reads it)."""

    source = "none"

    def quote(self, type_name: str, properties: Mapping[str, Any], region: str) -> Quote:
        return Quote(None, reason="no prices in this test")


def _plan(catalog: TypeCatalog, resources: list[dict[str, Any]]) -> Any:
    specs = parse_desired_state({"resources": resources}, catalog)
    return make_plan(
        project_id="web",
        plan_id="plan-0123456789ab",
        author="ed",
        description="",
        kind="full",
        desired=specs,
        current=None,
        catalog=catalog,
        full=True,
        lint=False,
        pricing=NoPrices(),
    )


def test_a_plan_is_made_from_a_catalog_held_in_memory() -> None:
    plan = _plan(
        DictCatalog(),
        [
            {"name": "net", "type": "Test::Net::Network", "properties": {"Cidr": "10.0.0.0/16"}},
            {"name": "zone", "type": "Test::Net::Zone", "properties": {"NetworkId": {"Ref": "net"}}},
        ],
    )
    assert [(c.name, c.action) for c in plan.changes] == [("net", Action.CREATE), ("zone", Action.CREATE)]
    assert plan.execution_order == [["net"], ["zone"]]
    assert plan.cost.source == "none"


def test_the_schema_of_the_port_is_what_validation_checks() -> None:
    with pytest.raises(InfraError) as caught:
        _plan(DictCatalog(), [{"name": "net", "type": "Test::Net::Network", "properties": {"Cidr": 5}}])
    assert caught.value.code == "VALIDATION_001"


@pytest.mark.parametrize("module", sorted(str(p.relative_to(DOMAIN)) for p in DOMAIN.rglob("*.py")))
def test_no_domain_module_imports_an_adapter(module: str) -> None:
    tree = ast.parse((DOMAIN / module).read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    adapters = ("infra_mcp.catalog", "infra_mcp.stores", "infra_mcp.upstream", "infra_mcp.services", "infra_mcp.server")
    assert not {m for m in imported if m.startswith(adapters)}

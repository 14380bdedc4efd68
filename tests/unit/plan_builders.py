"""Builders shared by the plan-engine tests: specs, applied states and plans in one line each."""

from __future__ import annotations

from typing import Any

from infra_mcp.catalog.prices import bundled_pricing
from infra_mcp.catalog.registry import Catalog, default_catalog
from infra_mcp.domain.desired import declared_properties, parse_desired_state
from infra_mcp.domain.plan import Plan, ResourceSpec
from infra_mcp.domain.planner import make_plan
from infra_mcp.domain.state import StateFile, StateResource

LINEAGE = "3f1c9a2e-0000-4000-8000-00000000cafe"


def catalog() -> Catalog:
    return default_catalog()


def resources(*entries: dict[str, Any]) -> list[ResourceSpec]:
    return parse_desired_state({"resources": list(entries)}, catalog())


def vpc(name: str = "web-vpc", cidr: str = "10.0.0.0/16", **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": "AWS::EC2::VPC", "properties": {"CidrBlock": cidr}, **extra}


def subnet(name: str = "web-subnet", vpc_name: str = "web-vpc", cidr: str = "10.0.1.0/24") -> dict[str, Any]:
    return {
        "name": name,
        "type": "AWS::EC2::Subnet",
        "properties": {"VpcId": {"Ref": vpc_name}, "CidrBlock": cidr},
    }


def applied(
    specs: list[ResourceSpec], *, serial: int = 4, reported: dict[str, dict[str, Any]] | None = None
) -> StateFile:
    """The state an executor would write after applying ``specs``: AWS adds defaults and ids."""
    reported = reported or {}
    rows = []
    for i, spec in enumerate(specs):
        rows.append(
            StateResource(
                id=f"phys-{i}",
                name=spec.name,
                type=spec.type,
                region=spec.region,
                properties={**declared_properties(spec, catalog()), **reported.get(spec.name, {})},
                declared=declared_properties(spec, catalog()),
                tags=dict(spec.tags),
                depends_on=list(spec.depends_on),
            )
        )
    return StateFile(project_id="web", serial=serial, lineage=LINEAGE, resources=rows)


def plan_for(
    specs: list[ResourceSpec], current: StateFile | None = None, *, full: bool = True, lint: bool = False, **kw: Any
) -> Plan:
    return make_plan(
        project_id="web",
        plan_id="plan-0123456789ab",
        author="alice",
        description="test",
        kind="full" if full else "partial",
        desired=specs,
        current=current,
        catalog=catalog(),
        full=full,
        lint=lint,
        pricing=kw.pop("pricing", None) or bundled_pricing(),
        **kw,
    )

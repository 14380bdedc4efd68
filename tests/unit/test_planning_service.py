"""PlanningService over in-memory fakes: plans stored pending, nothing stored on bad input, no secret leaks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra_mcp.domain.desired import declared_properties
from infra_mcp.domain.plan import Action, Plan, PlanStatus
from infra_mcp.domain.project import Member, Project, Role
from infra_mcp.domain.state import StateFile, StateResource
from infra_mcp.errors import InfraError
from infra_mcp.services.planning import PlanningService
from infra_mcp.services.secrets import SecretSealer
from tests.fakes.stores import TEST_NOTARY, FakeProjectStore, FakeStateStores
from tests.unit.plan_builders import catalog, resources, subnet, vpc

SECRET = "correct-horse-battery-staple"


PROJECT = Project(
    id="web",
    name="web",
    owner="alice",
    members=[Member(user="alice", role=Role.OWNER), Member(user="val", role=Role.VIEWER)],
)


@pytest.fixture
def store() -> FakeProjectStore:
    fake = FakeProjectStore()
    fake.projects[PROJECT.id] = PROJECT
    return fake


@pytest.fixture
def states() -> FakeStateStores:
    return FakeStateStores()


@pytest.fixture
def service(store: FakeProjectStore, states: FakeStateStores, tmp_path: Path) -> PlanningService:
    return PlanningService(
        store, states, catalog(), SecretSealer(tmp_path / "sealing.key"), notary=TEST_NOTARY, lint=False
    )


async def _apply(states: FakeStateStores, entries: list[dict[str, Any]]) -> StateFile:
    """Write a state as an executor would after applying ``entries`` (one more serial)."""
    current = await states.for_project(PROJECT).read("web")
    rows = [
        StateResource(
            id=f"phys-{spec.name}",
            arn=f"arn:aws:test:::{spec.name}",
            name=spec.name,
            type=spec.type,
            properties={**declared_properties(spec, catalog()), "AwsDefault": 1},
            declared=declared_properties(spec, catalog()),
            tags=spec.tags,
        )
        for spec in resources(*entries)
    ]
    base = current or StateFile(project_id="web", serial=0, lineage="lin-1")
    return await states.for_project(PROJECT).write(base.next_version(rows, user="alice", description="apply"))


async def _code(coro: Any) -> str:
    try:
        await coro
    except InfraError as exc:
        return exc.code
    raise AssertionError("expected an InfraError")


def _db(password: str = SECRET) -> dict[str, Any]:
    return {
        "name": "db",
        "type": "AWS::RDS::DBInstance",
        "properties": {
            "DBInstanceClass": "db.t3.micro",
            "Engine": "postgres",
            "AllocatedStorage": "20",
            "MasterUsername": "admin",
            "MasterUserPassword": password,
        },
    }


async def test_plan_changes_stores_a_pending_full_plan(service: PlanningService, store: FakeProjectStore) -> None:
    plan = await service.plan_changes("web", {"resources": [vpc(), subnet()]}, "network", "alice")
    assert plan.id.startswith("plan-")
    assert len(plan.id) == len("plan-") + 12
    assert (plan.status, plan.kind, plan.author) == (PlanStatus.PENDING, "full", "alice")
    assert store.plans[plan.id].fingerprint == plan.fingerprint
    assert store.audit[-1].action == "plan.create"


async def test_nothing_is_stored_when_validation_fails(service: PlanningService, store: FakeProjectStore) -> None:
    bad = {"resources": [vpc(), {"name": "web-vpc", "type": "AWS::EC2::Nope"}]}
    assert await _code(service.plan_changes("web", bad, "", "alice")) == "VALIDATION_001"
    schema_bad = {"resources": [{"name": "sg", "type": "AWS::EC2::SecurityGroup", "properties": {}}]}
    assert await _code(service.plan_changes("web", schema_bad, "", "alice")) == "VALIDATION_001"
    assert store.plans == {}


async def test_a_viewer_cannot_plan_but_can_read_plans(service: PlanningService) -> None:
    assert await _code(service.plan_changes("web", {"resources": []}, "", "val")) == "AUTH_001"
    assert await _code(service.create_resource("web", name="v", type="EC2::VPC", user="val")) == "AUTH_001"
    plan = await service.plan_changes("web", {"resources": [vpc()]}, "", "alice")
    assert (await service.get_plan(plan.id, "val")).id == plan.id
    assert await _code(service.get_plan(plan.id, "mallory")) == "RESOURCE_001"  # a non-member: as if not there


async def test_write_only_values_never_appear_in_plan_json_or_text(
    service: PlanningService, store: FakeProjectStore
) -> None:
    plan = await service.plan_changes("web", {"resources": [_db()]}, "database", "alice")
    stored = store.plans[plan.id]
    assert SECRET not in stored.model_dump_json()
    assert SECRET not in service.render(stored)
    sealed = stored.changes[0].desired.properties["MasterUserPassword"]  # type: ignore[union-attr]
    assert service.sealer.unseal(sealed) == SECRET


async def test_write_only_values_never_appear_in_validation_errors(service: PlanningService) -> None:
    bad = _db()
    bad["properties"]["AllocatedStorage"] = {"not": "a number"}
    bad["properties"]["Colour"] = "red"
    with pytest.raises(InfraError) as caught:
        await service.plan_changes("web", {"resources": [bad]}, "", "alice")
    assert SECRET not in json.dumps(caught.value.to_dict())


async def test_a_forged_sealed_value_is_refused(service: PlanningService, store: FakeProjectStore) -> None:
    forged = _db()
    forged["properties"]["MasterUserPassword"] = {"__sealed__": "bm90IG91cnM=", "sha256": "00"}
    assert await _code(service.plan_changes("web", {"resources": [forged]}, "", "alice")) == "VALIDATION_001"
    assert store.plans == {}


async def test_create_resource_makes_a_one_change_partial_plan_that_may_refer_to_existing_resources(
    service: PlanningService, states: FakeStateStores
) -> None:
    await _apply(states, [vpc()])
    plan = await service.create_resource(
        "web", name="web-subnet", type="EC2::Subnet", properties=subnet()["properties"], user="alice"
    )
    assert plan.kind == "partial"
    assert [(c.name, c.action) for c in plan.changes] == [("web-subnet", Action.CREATE)]
    assert plan.base_serial == 1


async def test_create_resource_refuses_a_name_already_in_use(service: PlanningService, states: FakeStateStores) -> None:
    await _apply(states, [vpc()])
    assert await _code(service.create_resource("web", name="web-vpc", type="EC2::VPC", user="alice")) == "CONFLICT_001"


async def test_update_resource_merges_over_the_declared_properties_and_null_removes(
    service: PlanningService, states: FakeStateStores
) -> None:
    entry = {
        **vpc(tags={"Env": "dev", "Old": "x"}),
        "properties": {"CidrBlock": "10.0.0.0/16", "EnableDnsHostnames": True},
    }
    await _apply(states, [entry])
    plan = await service.update_resource(
        "web",
        resource="phys-web-vpc",
        properties={"EnableDnsHostnames": None},
        tags={"Env": "prod", "Old": None},
        user="alice",
    )
    (change,) = plan.changes
    assert change.action is Action.UPDATE
    assert {pc.path: (pc.before, pc.after) for pc in change.property_changes} == {
        "/EnableDnsHostnames": (True, None),
        "/Tags/Env": ("dev", "prod"),
        "/Tags/Old": ("x", None),
    }


async def test_update_resource_keeps_an_untouched_secret_unchanged(
    service: PlanningService, states: FakeStateStores
) -> None:
    await _apply(states, [_db()])
    plan = await service.update_resource(
        "web", resource="db", properties={"DBInstanceClass": "db.t3.small"}, user="alice"
    )
    assert [pc.path for pc in plan.changes[0].property_changes] == ["/DBInstanceClass"]


async def test_update_resource_that_replaces_cascades_to_the_resources_referring_to_it(
    service: PlanningService, states: FakeStateStores
) -> None:
    await _apply(states, [vpc(), subnet(), vpc("unrelated", "10.9.0.0/16")])
    plan = await service.update_resource(
        "web", resource="web-vpc", properties={"CidrBlock": "10.1.0.0/16"}, user="alice"
    )
    actions = {c.name: c.action for c in plan.changes}
    # The subnet's VpcId (create-only) refers to the VPC, which gets a new id: it must be replaced too.
    assert actions == {"web-vpc": Action.REPLACE, "web-subnet": Action.REPLACE}
    assert plan.kind == "partial"
    assert plan.summary.text == "Plan: 0 to add, 0 to change, 2 to replace, 0 to destroy."


async def test_update_resource_of_an_unknown_resource_is_not_found(service: PlanningService) -> None:
    assert await _code(service.update_resource("web", resource="ghost", properties={}, user="alice")) == "RESOURCE_001"


async def test_delete_resource_plans_one_delete(service: PlanningService, states: FakeStateStores) -> None:
    await _apply(states, [vpc(), vpc("other", "10.1.0.0/16")])
    plan = await service.delete_resource("web", resource="arn:aws:test:::other", user="alice")
    assert [(c.name, c.action) for c in plan.changes] == [("other", Action.DELETE)]
    assert plan.summary.text == "Plan: 0 to add, 0 to change, 0 to replace, 1 to destroy."


async def test_delete_resource_is_refused_while_another_resource_refers_to_it(
    service: PlanningService, states: FakeStateStores, store: FakeProjectStore
) -> None:
    await _apply(states, [vpc(), subnet()])
    assert await _code(service.delete_resource("web", resource="web-vpc", user="alice")) == "VALIDATION_001"
    assert store.plans == {}


async def test_plan_rollback_targets_what_a_history_version_declared(
    service: PlanningService, states: FakeStateStores
) -> None:
    await _apply(states, [vpc()])
    await _apply(states, [vpc(cidr="10.5.0.0/16"), vpc("extra", "10.6.0.0/16")])
    plan = await service.plan_rollback("web", 1, "alice")
    assert plan.kind == "rollback"
    assert {c.name: c.action for c in plan.changes} == {"web-vpc": Action.REPLACE, "extra": Action.DELETE}
    assert plan.base_serial == 2


async def test_plan_rollback_to_a_missing_version_is_not_found(service: PlanningService) -> None:
    assert await _code(service.plan_rollback("web", 9, "alice")) == "RESOURCE_001"


async def test_list_plans_filters_by_status(service: PlanningService) -> None:
    first = await service.plan_changes("web", {"resources": [vpc()]}, "", "alice")
    plans: list[Plan] = await service.list_plans("web", "val", status="pending")
    assert [p.id for p in plans] == [first.id]
    assert await service.list_plans("web", "val", status="executed") == []
    assert await _code(service.list_plans("web", "val", status="nonsense")) == "VALIDATION_001"


async def test_a_malformed_plan_id_is_not_found(service: PlanningService) -> None:
    assert await _code(service.get_plan("../../etc", "alice")) == "RESOURCE_001"


async def test_the_plan_reuses_the_graph_parsing_found_even_after_sealing(
    service: PlanningService, store: FakeProjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12, bug 4: sealing must not drop the parsed graph, or production walks every tree twice."""
    from infra_mcp.domain import desired, planner

    document = {"resources": [vpc(), subnet(), _db()]}
    parsed = service.parse_full(document, default_region="us-east-1")
    sealed = service._seal(parsed)
    assert sealed[2].properties["MasterUserPassword"] != SECRET  # the secret was sealed ...
    assert getattr(sealed, "graph", None) == desired.dependency_graph(list(sealed))  # ... and the graph kept
    walks: list[str] = []
    real = planner.dependency_graph

    def counted(specs: Any) -> Any:
        if getattr(specs, "graph", None) is None:
            walks.append("walked again")
        return real(specs)

    monkeypatch.setattr(planner, "dependency_graph", counted)
    plan = await service.plan_changes("web", document, "graph", "alice")
    assert walks == []
    assert "web-vpc" in plan.execution_order[0]


def test_a_rewritten_resource_is_graphed_again_and_the_others_keep_their_entries() -> None:
    from infra_mcp.domain.desired import parse_desired_state, with_graph

    parsed = parse_desired_state({"resources": [vpc(), subnet()]}, catalog())
    rewritten = [parsed[0], parsed[1].model_copy(update={"properties": {"CidrBlock": "10.0.9.0/24"}})]
    carried = with_graph(parsed, rewritten)
    assert getattr(carried, "graph", None) == {"web-vpc": set(), "web-subnet": set()}
    assert getattr(parsed, "graph", None) == {"web-vpc": set(), "web-subnet": {"web-vpc"}}  # not mutated

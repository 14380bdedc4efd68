"""DriftService and ImportService over the in-memory cloud: what is read, kept, planned and sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra_mcp.domain.drift import DriftStatus
from infra_mcp.domain.plan import Action, ApprovalMethod, Plan, PlanStatus
from infra_mcp.errors import InfraError
from infra_mcp.services.drift import DriftService
from infra_mcp.services.imports import ImportRequest, ImportService
from infra_mcp.services.planning import PlanningService
from tests.fakes.cloud_control import World, res, vpc
from tests.fakes.stores import TEST_NOTARY, FlakyStateStores


class Drift:
    def __init__(self, world: World) -> None:
        self.world = world
        planning = PlanningService(world.projects, world.states, world.cloud.catalog, world.sealer, notary=TEST_NOTARY)
        self.service = DriftService(
            world.projects,
            world.projects,
            world.states,
            world.upstream,
            world.cloud.catalog,
            planning,
            clock=world.clock,
        )
        self.imports = ImportService(world.projects, world.states, world.upstream, world.cloud.catalog, planning)
        self.planning = planning

    def live(self, name: str) -> dict[str, Any]:
        identifier = self.world.upstream.identifier_of(name)
        assert identifier is not None
        return self.world.cloud.resources[("AWS::EC2::VPC", identifier)]

    async def run(self, plan: Plan) -> Plan:
        await self.world.approvals.approve(plan.id, "alice", method=ApprovalMethod.ELICITATION)
        return await self.world.execution.execute(plan.id, "ed")


@pytest.fixture
def drift(tmp_path: Path) -> Drift:
    return Drift(World(tmp_path))


async def code(coro: Any) -> str:
    with pytest.raises(InfraError) as caught:
        await coro
    return caught.value.code


def retag(live: dict[str, Any], value: str) -> None:
    live["Tags"] = [{"Key": "Name", "Value": value}]


async def test_detect_keeps_the_last_result_with_its_time_and_serial_and_audits_it(drift: Drift) -> None:
    await drift.world.apply([vpc("net"), vpc("other", "10.1.0.0/16")])
    retag(drift.live("net"), "renamed")
    report = await drift.service.detect("web", "vic", progress=drift.world.report)  # a viewer may look
    assert [(r.name, r.status) for r in report.resources] == [
        ("net", DriftStatus.MODIFIED),
        ("other", DriftStatus.IN_SYNC),
    ]
    assert [(d.path, d.expected, d.actual) for d in report.resources[0].differences] == [
        ("/Tags/Name", "net", "renamed")
    ]
    assert report.checked_at == drift.world.now
    assert report.serial == (await drift.world.state()).serial
    assert await drift.service.last("web", "vic") == report
    assert drift.world.projects.audit[-1].action == "drift.detect"
    assert drift.world.projects.audit[-1].details["modified"] == 1
    assert [p[0] for p in drift.world.progress[-3:]] == [0, 1, 2]


async def test_detect_refuses_names_not_in_state_and_hides_projects_from_non_members(drift: Drift) -> None:
    await drift.world.apply([vpc("net")])
    assert await code(drift.service.detect("web", "ed", ["net", "ghost"])) == "RESOURCE_001"
    assert await code(drift.service.detect("web", "mallory")) == "RESOURCE_001"
    assert await code(drift.service.last("web", "mallory")) == "RESOURCE_001"


async def test_accepting_drift_changes_only_the_record_and_never_calls_aws(drift: Drift) -> None:
    await drift.world.apply([vpc("net")])
    retag(drift.live("net"), "renamed")
    plan = await drift.service.accept("web", "ed", ["net"])
    (change,) = plan.changes
    assert (change.action, change.record_only, change.live_values) == (Action.UPDATE, True, {"/Tags/Name": "renamed"})
    before = (await drift.world.state()).serial
    calls = len(drift.world.cloud.calls)
    drift.world.upstream.go_down()  # nothing is sent: an unreachable upstream does not matter
    done = await drift.run(plan)
    assert done.status is PlanStatus.EXECUTED
    assert len(drift.world.cloud.calls) == calls
    state = await drift.world.state()
    assert state.serial == before + 1
    assert state.metadata.change_plan_id == plan.id
    assert state.resources[0].tags == {"Name": "renamed"}


async def test_accepting_a_deletion_drops_the_record_and_a_viewer_cannot_accept(drift: Drift) -> None:
    await drift.world.apply([vpc("net")])
    identifier = drift.world.upstream.identifier_of("net")
    del drift.world.cloud.resources[("AWS::EC2::VPC", str(identifier))]
    assert await code(drift.service.accept("web", "vic", ["net"])) == "AUTH_001"
    plan = await drift.service.accept("web", "ed", ["net"])
    assert [(c.action, c.record_only) for c in plan.changes] == [(Action.DELETE, True)]
    assert "1 to drop from state" in plan.summary.text
    await drift.run(plan)
    assert (await drift.world.state()).resources == []


async def test_an_accepted_drift_plan_edited_to_send_its_change_is_refused(drift: Drift) -> None:
    await drift.world.apply([vpc("net")])
    retag(drift.live("net"), "renamed")
    plan = await drift.service.accept("web", "ed", ["net"])
    await drift.world.approvals.approve(plan.id, "alice", method=ApprovalMethod.ELICITATION)
    drift.world.projects.plans[plan.id].changes[0].record_only = False
    assert await code(drift.world.execution.execute(plan.id, "ed")) == "INTEGRITY_001"


async def test_a_refreshed_plan_patches_from_the_live_values_back_to_the_declared_ones(drift: Drift) -> None:
    await drift.world.apply([vpc("net")])
    retag(drift.live("net"), "renamed")
    desired = {"resources": [vpc("net")]}
    plain = await drift.planning.plan_changes("web", desired, "", "ed")
    assert not plain.has_changes  # against the record, nothing changed
    refreshed = await drift.planning.plan_changes("web", desired, "", "ed", refresh=drift.service.refresh)
    (change,) = refreshed.changes
    assert change.live_values == {"/Tags/Name": "renamed"}
    assert [(p.path, p.before, p.after) for p in change.property_changes] == [("/Tags/Name", "renamed", "net")]
    await drift.run(refreshed)
    assert drift.live("net")["Tags"] == [{"Key": "Name", "Value": "net"}]
    assert drift.world.cloud.payloads[-1][0] == "update"


async def test_a_refreshed_plan_recreates_a_resource_deleted_outside_without_keeping_its_old_record(
    drift: Drift,
) -> None:
    await drift.world.apply([vpc("net")])
    old = drift.world.upstream.identifier_of("net")
    del drift.world.cloud.resources[("AWS::EC2::VPC", str(old))]
    plan = await drift.planning.plan_changes(
        "web", {"resources": [vpc("net")]}, "", "ed", refresh=drift.service.refresh
    )
    (change,) = plan.changes
    assert (change.action, change.physical_id) == (Action.CREATE, old)
    await drift.run(plan)
    state = await drift.world.state()
    assert [r.name for r in state.resources] == ["net"]
    assert state.resources[0].id != old


async def test_an_import_records_the_writable_live_properties_as_declared_and_sends_nothing(drift: Drift) -> None:
    await drift.world.apply([vpc("net")])
    identifier = str(drift.world.upstream.identifier_of("net"))
    forgotten = (await drift.world.state()).next_version([], user="x", description="forgotten")
    await drift.world.states.for_project(drift.world.project).write(forgotten)
    wanted = [ImportRequest(name="adopted", type="AWS::EC2::VPC", identifier=identifier)]
    assert await code(drift.imports.plan_import("web", "vic", wanted)) == "AUTH_001"
    plan = await drift.imports.plan_import("web", "ed", wanted)
    (change,) = plan.changes
    assert (change.action, change.physical_id) == (Action.IMPORT, identifier)
    assert change.desired is not None
    assert "VpcId" not in change.desired.properties
    mutations = [c for c in drift.world.cloud.calls if c[0] in ("create", "update", "delete")]
    await drift.run(plan)
    assert [c for c in drift.world.cloud.calls if c[0] in ("create", "update", "delete")] == mutations
    (record,) = (await drift.world.state()).resources
    assert (record.name, record.id, record.declared) == ("adopted", identifier, change.desired.properties)
    assert record.tags == {"Name": "net"}
    again = ImportRequest(name="twice", type="AWS::EC2::VPC", identifier=identifier)
    assert await code(drift.imports.plan_import("web", "ed", [again])) == "CONFLICT_001"


async def test_an_import_of_nothing_or_of_too_much_is_refused(drift: Drift) -> None:
    assert await code(drift.imports.plan_import("web", "ed", [])) == "VALIDATION_001"
    many = [ImportRequest(name=f"r{i}", type="AWS::EC2::VPC", identifier=f"vpc-{i}") for i in range(101)]
    assert await code(drift.imports.plan_import("web", "ed", many)) == "VALIDATION_001"
    bad_name = [ImportRequest(name="no spaces", type="AWS::EC2::VPC", identifier="vpc-1")]
    assert await code(drift.imports.plan_import("web", "ed", bad_name)) == "VALIDATION_001"
    bad_region = [ImportRequest(name="r", type="AWS::EC2::VPC", identifier="vpc-1", region="moon-1; rm")]
    assert await code(drift.imports.plan_import("web", "ed", bad_region)) == "VALIDATION_001"


async def test_accepting_drift_that_opened_a_port_to_the_world_is_rated_as_the_security_change_it_is(
    drift: Drift,
) -> None:
    rule = {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": "10.0.0.0/8"}
    await drift.world.apply(
        [res("web-sg", "AWS::EC2::SecurityGroup", GroupDescription="web", SecurityGroupIngress=[rule])]
    )
    identifier = str(drift.world.upstream.identifier_of("web-sg"))
    opened = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIp": "0.0.0.0/0"}
    drift.world.cloud.resources[("AWS::EC2::SecurityGroup", identifier)]["SecurityGroupIngress"].append(opened)
    plan = await drift.service.accept("web", "ed", ["web-sg"])
    (change,) = plan.changes
    assert change.security_findings
    assert plan.risk.rank >= 1


async def test_an_import_is_refused_while_another_projects_state_cannot_be_read(drift: Drift) -> None:
    await drift.world.apply([vpc("net")])
    identifier = str(drift.world.upstream.identifier_of("net"))
    other = drift.world.project.model_copy(update={"id": "other", "name": "other"})
    drift.world.projects.projects["other"] = other
    flaky = FlakyStateStores(drift.world.store)
    flaky.down.add("other")
    imports = ImportService(
        drift.world.projects, flaky, drift.world.upstream, drift.world.cloud.catalog, drift.planning
    )
    wanted = [ImportRequest(name="again", type="AWS::EC2::VPC", identifier=identifier)]
    assert await code(imports.plan_import("web", "ed", wanted)) == "STATE_004"
    seen = await imports.discover("web", "ed", ["AWS::EC2::VPC"], None)  # listing still answers
    assert [(f.identifier, f.owner is not None) for f in seen.found] == [(identifier, True)]

"""ExecutionService against the in-memory cloud: refusals, ordering, parallelism, failures, records."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from infra_mcp.domain.cloud import OperationStatus, ProgressEvent
from infra_mcp.domain.plan import Action, ApprovalMethod, ChangeOutcomeStatus, PlanStatus
from infra_mcp.domain.state import ResourceStatus
from infra_mcp.errors import InfraError, UpstreamRefusesChanges, UpstreamUnavailable
from infra_mcp.services.execution.operations import CloudControlCalls, PollPolicy
from tests.fakes.cloud_control import World, res, subnet, vpc


async def refused(coro: object) -> InfraError:
    with pytest.raises(InfraError) as caught:
        await coro  # type: ignore[misc]
    return caught.value


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


# ---- refusals -----------------------------------------------------------------------------------


async def test_execute_refuses_a_pending_plan_saying_approve_first(world: World) -> None:
    plan = await world.plan([vpc("net")])
    error = await refused(world.execution.execute(plan.id, "ed"))
    assert error.code == "APPROVAL_002"
    assert error.details["reason"] == "not_approved"
    assert world.cloud.calls == []
    assert (world.projects.audit[-1].action, world.projects.audit[-1].outcome) == ("plan.execute", "refused")


async def test_execute_refuses_a_viewer(world: World) -> None:
    plan = await world.approved([vpc("net")])
    assert (await refused(world.execution.execute(plan.id, "vic"))).code == "AUTH_001"


async def test_execute_refuses_an_expired_approval_and_the_plan_becomes_expired(world: World) -> None:
    plan = await world.approved([vpc("net")])
    world.advance(minutes=61)
    assert (await refused(world.execution.execute(plan.id, "ed"))).code == "APPROVAL_001"
    assert (await world.projects.get_plan(plan.id)).status is PlanStatus.EXPIRED
    assert world.cloud.calls == []


async def test_execute_refuses_a_plan_edited_in_the_database_after_approval(world: World) -> None:
    plan = await world.approved([vpc("net")])
    stored = world.projects.plans[plan.id]
    assert stored.changes[0].desired is not None
    stored.changes[0].desired.properties["CidrBlock"] = "0.0.0.0/0"
    error = await refused(world.execution.execute(plan.id, "ed"))
    assert error.code == "INTEGRITY_001"
    assert error.details["reason"] == "plan_signature_mismatch"
    assert world.cloud.calls == []


async def test_execute_refuses_a_plan_made_against_an_older_state_and_supersedes_it(world: World) -> None:
    stale = await world.approved([vpc("a")])
    await world.apply([vpc("b")])
    assert (await world.projects.get_plan(stale.id)).status is PlanStatus.SUPERSEDED
    assert (await refused(world.execution.execute(stale.id, "ed"))).code == "PLAN_003"


async def test_execute_refuses_a_stale_plan_still_marked_approved_with_plan_001(world: World) -> None:
    plan = await world.approved([vpc("a")])
    state = await world.state()
    await world.states.for_project(world.project).write(state.next_version([], user="x", description="moved by hand"))
    assert (await refused(world.execution.execute(plan.id, "ed"))).code == "PLAN_001"
    assert (await world.projects.get_plan(plan.id)).status is PlanStatus.SUPERSEDED


@pytest.mark.parametrize("final", [PlanStatus.EXECUTED, PlanStatus.REJECTED])
async def test_an_executed_or_rejected_plan_can_never_run_again(world: World, final: PlanStatus) -> None:
    plan = await world.approved([vpc("net")])
    if final is PlanStatus.EXECUTED:
        await world.execution.execute(plan.id, "ed")
    else:
        await world.approvals.reject(plan.id, "alice", "no")
    calls = len(world.cloud.calls)
    assert (await refused(world.execution.execute(plan.id, "ed"))).code == "PLAN_003"
    assert len(world.cloud.calls) == calls


async def test_two_concurrent_executions_of_one_plan_run_it_exactly_once(world: World) -> None:
    plan = await world.approved([vpc("net"), subnet("sub", "net")])
    codes: list[str] = []
    finished: list[PlanStatus] = []

    async def attempt() -> None:
        try:
            finished.append((await world.execution.execute(plan.id, "ed")).status)
        except InfraError as exc:
            codes.append(exc.code)

    async with anyio.create_task_group() as tg:
        tg.start_soon(attempt)
        tg.start_soon(attempt)
    assert finished == [PlanStatus.EXECUTED]
    assert codes in (["STATE_003"], ["PLAN_003"])
    assert sum(1 for c in world.cloud.calls if c[0] == "create") == 2


async def test_a_second_execution_on_a_locked_project_is_refused_with_state_003(world: World) -> None:
    plan = await world.approved([vpc("net")])
    await world.store.acquire_lock("web", owner="someone", operation="execute", lease_seconds=60)
    error = await refused(world.execution.execute(plan.id, "ed"))
    assert error.code == "STATE_003"
    assert (await world.projects.get_plan(plan.id)).status is PlanStatus.APPROVED


# ---- the walk -----------------------------------------------------------------------------------


async def test_dependents_wait_for_their_dependencies_and_get_real_ids_through_ref_and_getatt(world: World) -> None:
    sg = res(
        "sg",
        "AWS::EC2::SecurityGroup",
        GroupDescription="web",
        VpcId={"Fn::GetAtt": ["net", "VpcId"]},
        depends_on=["sub"],
    )
    done = await world.apply([vpc("net"), subnet("sub", "net"), sg])
    assert done.status is PlanStatus.EXECUTED
    vpc_id = world.upstream.identifier_of("net")
    assert world.upstream.properties_of("sub")["VpcId"] == vpc_id  # type: ignore[index]
    assert world.upstream.properties_of("sg")["VpcId"] == vpc_id  # type: ignore[index]
    order = [name for kind, name, _ in world.cloud.calls if kind == "create"]
    assert order == ["AWS::EC2::VPC", "AWS::EC2::Subnet", "AWS::EC2::SecurityGroup"]


async def test_tags_are_sent_in_the_types_list_format(world: World) -> None:
    await world.apply([vpc("net")])
    _, _, payload = world.cloud.payloads[0]
    assert payload["Tags"] == [{"Key": "Name", "Value": "net"}]


async def test_tags_are_sent_as_a_map_for_types_that_take_a_map(world: World) -> None:
    await world.apply([res("p", "AWS::SSM::Parameter", Type="String", Value="v")])
    _, _, payload = world.cloud.payloads[0]
    assert payload["Tags"] == {"Name": "p"}


async def test_parallelism_bound_is_respected(tmp_path: Path) -> None:
    world = World(tmp_path, parallelism=3, polls=3)
    done = await world.apply([vpc(f"v{i}", f"10.{i}.0.0/16") for i in range(12)])
    assert done.status is PlanStatus.EXECUTED
    assert world.cloud.max_in_flight == 3


async def test_independent_changes_run_concurrently_up_to_the_bound(tmp_path: Path) -> None:
    world = World(tmp_path, parallelism=10, polls=3)
    await world.apply([vpc(f"v{i}", f"10.{i}.0.0/16") for i in range(6)])
    assert world.cloud.max_in_flight == 6


async def test_state_records_what_aws_reports_and_what_was_declared(world: World) -> None:
    await world.apply([vpc("net"), subnet("sub", "net")])
    state = await world.state()
    sub = state.resource("sub")
    assert sub is not None
    assert sub.id == world.upstream.identifier_of("sub")
    assert sub.properties["SubnetId"] == sub.id
    assert sub.declared["VpcId"] == {"Ref": "net"}
    assert sub.depends_on == ["net"]
    assert (sub.status, sub.tags, sub.created_at) == (ResourceStatus.ACTIVE, {"Name": "sub"}, world.now)


async def test_the_final_state_version_names_the_plan_its_description_and_the_executor(world: World) -> None:
    plan = await world.approved([vpc("net")], description="network")
    done = await world.execution.execute(plan.id, "ed")
    state = await world.state()
    assert (state.metadata.change_plan_id, state.metadata.change_description, state.metadata.last_modified_by) == (
        plan.id,
        f"network ({plan.id}: {plan.summary.text})",
        "ed",
    )
    assert done.execution is not None
    assert done.execution.final_serial == state.serial


async def test_other_waiting_plans_are_superseded_after_an_execution(world: World) -> None:
    other = await world.plan([vpc("x")])
    await world.apply([vpc("net")])
    assert (await world.projects.get_plan(other.id)).status is PlanStatus.SUPERSEDED


async def test_progress_is_reported_as_changes_start_and_finish(world: World) -> None:
    await world.apply([vpc("net"), subnet("sub", "net")])
    assert world.progress[0][:2] == (0, 2)
    assert world.progress[-1][:2] == (2, 2)
    messages = [m for _, _, m in world.progress]
    assert any("net" in m and "started" in m for m in messages)
    assert any("sub" in m and "succeeded" in m for m in messages)


def assert_progress_strictly_increases_to(world: World, total: int) -> None:
    values = [value for value, _, _ in world.progress]
    assert all(later > earlier for earlier, later in itertools.pairwise(values)), values
    assert values[0] == 0
    assert values[-1] == total
    assert {t for _, t, _ in world.progress} == {total}


async def test_progress_values_increase_with_every_notification_and_end_at_the_change_count(world: World) -> None:
    await world.apply([vpc("net"), subnet("sub", "net"), vpc("other", "10.1.0.0/16")])
    assert_progress_strictly_increases_to(world, 3)
    messages = [m for _, _, m in world.progress]
    assert len(messages) == 1 + 2 * 3  # the opening one, then every start and every end
    assert "create net (AWS::EC2::VPC) started" in messages
    assert "create sub: succeeded" in messages


async def test_progress_counts_skipped_changes_and_replacements_once_each(world: World) -> None:
    await world.apply([vpc("net", "10.0.0.0/16")])
    world.progress.clear()
    world.upstream.fail("other", "CREATE", "InvalidRequest", "no")
    done = await world.apply(
        [vpc("net", "10.9.0.0/16"), vpc("other", "10.1.0.0/16"), subnet("sub", "other", "10.1.1.0/24")]
    )
    assert {c.name: c.action for c in done.actionable_changes} == {
        "net": Action.REPLACE,  # two operations, one change
        "other": Action.CREATE,  # fails
        "sub": Action.CREATE,  # skipped: never starts
    }
    assert_progress_strictly_increases_to(world, 3)
    messages = [m for _, _, m in world.progress]
    assert "create sub: skipped" in messages
    assert not any(m.startswith("create sub") and m.endswith("started") for m in messages)


async def test_progress_keeps_increasing_under_parallel_starts_and_a_slow_client(tmp_path: Path) -> None:
    world = World(tmp_path, parallelism=4, polls=3)
    original = world.report

    async def slow_report(done: float, total: float | None, message: str) -> None:
        await anyio.sleep(0)  # the client's write yields: other changes start and end meanwhile
        await original(done, total, message)

    world.report = slow_report  # type: ignore[method-assign]
    await world.apply([vpc(f"v{i}", f"10.{i}.0.0/16") for i in range(8)])
    assert_progress_strictly_increases_to(world, 8)
    assert len(world.progress) == 1 + 2 * 8


async def test_an_update_sends_a_patch_of_only_the_changed_updatable_properties(world: World) -> None:
    await world.apply([vpc("net", EnableDnsSupport=False)])
    done = await world.apply([vpc("net", EnableDnsSupport=True)])
    assert done.status is PlanStatus.EXECUTED
    kind, _, patch = world.cloud.payloads[-1]
    assert kind == "update"
    assert patch == [{"op": "replace", "path": "/EnableDnsSupport", "value": True}]
    assert world.upstream.properties_of("net")["EnableDnsSupport"] is True  # type: ignore[index]


async def test_secrets_are_unsealed_only_in_the_call_and_stored_as_digests(world: World) -> None:
    await world.apply([res("s", "AWS::SecretsManager::Secret", SecretString="hunter2")])
    _, _, payload = world.cloud.payloads[0]
    assert payload["SecretString"] == "hunter2"
    state = await world.state()
    record = state.resource("s")
    assert record is not None
    assert "hunter2" not in record.model_dump_json()
    assert "SecretString" not in record.properties


async def test_deletes_run_in_reverse_dependency_order(world: World) -> None:
    await world.apply([vpc("net"), subnet("sub", "net")])
    done = await world.apply([])
    assert done.status is PlanStatus.EXECUTED
    deletes = [t for kind, t, _ in world.cloud.calls if kind == "delete"]
    assert deletes == ["AWS::EC2::Subnet", "AWS::EC2::VPC"]
    assert (await world.state()).resources == []
    assert world.cloud.resources == {}


async def test_a_replacement_creates_the_new_resource_before_deleting_the_old(world: World) -> None:
    await world.apply([vpc("net", "10.0.0.0/16")])
    old = world.upstream.identifier_of("net")
    done = await world.apply([vpc("net", "10.9.0.0/16")])
    assert done.changes[0].action is Action.REPLACE
    assert done.status is PlanStatus.EXECUTED
    mutations = [(kind, ident) for kind, _, ident in world.cloud.calls if kind in ("create", "delete")]
    assert mutations[-2:] == [("create", None), ("delete", old)]
    state = await world.state()
    assert [r.name for r in state.resources] == ["net"]
    assert state.resources[0].id == world.upstream.identifier_of("net") != old


async def test_a_replacement_with_a_fixed_name_deletes_first(world: World) -> None:
    trust = {"Version": "2012-10-17", "Statement": []}
    await world.apply([res("role", "AWS::IAM::Role", RoleName="app", Path="/a/", AssumeRolePolicyDocument=trust)])
    done = await world.apply(
        [res("role", "AWS::IAM::Role", RoleName="app", Path="/b/", AssumeRolePolicyDocument=trust)]
    )
    replace = done.changes[0]
    assert (replace.action, replace.replacement_strategy) == (Action.REPLACE, "delete_before_create")
    assert done.status is PlanStatus.EXECUTED
    mutations = [kind for kind, _, _ in world.cloud.calls if kind in ("create", "delete")]
    assert mutations[-2:] == ["delete", "create"]
    assert world.upstream.properties_of("role")["Path"] == "/b/"  # type: ignore[index]


async def test_a_dependent_of_a_replaced_resource_is_recreated_against_the_new_id(world: World) -> None:
    await world.apply([vpc("net", "10.0.0.0/16"), subnet("sub", "net", "10.0.1.0/24")])
    done = await world.apply([vpc("net", "10.9.0.0/16"), subnet("sub", "net", "10.9.1.0/24")])
    assert done.status is PlanStatus.EXECUTED
    new_vpc = world.upstream.identifier_of("net")
    assert world.upstream.properties_of("sub")["VpcId"] == new_vpc  # type: ignore[index]
    state = await world.state()
    assert sorted(r.name for r in state.resources) == ["net", "sub"]
    assert len(world.cloud.resources) == 2


# ---- failures -----------------------------------------------------------------------------------


async def test_partial_failure_skips_dependents_finishes_independent_branches_and_records_the_truth(
    world: World,
) -> None:
    world.upstream.fail("net", "CREATE", "InvalidRequest", "CIDR overlaps")
    done = await world.apply([vpc("net"), subnet("sub", "net"), vpc("other", "10.1.0.0/16")])
    assert done.status is PlanStatus.FAILED
    assert done.execution is not None
    outcomes = {o.name: o for o in done.execution.outcomes}
    assert (outcomes["net"].status, outcomes["net"].error_code, outcomes["net"].error_message) == (
        ChangeOutcomeStatus.FAILED,
        "InvalidRequest",
        "CIDR overlaps",
    )
    assert outcomes["sub"].status is ChangeOutcomeStatus.SKIPPED
    assert outcomes["other"].status is ChangeOutcomeStatus.SUCCEEDED
    assert [t for kind, t, _ in world.cloud.calls if kind == "create"].count("AWS::EC2::Subnet") == 0
    state = await world.state()
    assert [r.name for r in state.resources] == ["other"]
    assert {r.id for r in state.resources} == {i for _, i in world.cloud.resources}
    assert world.projects.audit[-1].outcome == "failed"


async def test_an_aws_error_raised_by_the_call_itself_fails_the_change_with_its_code(world: World) -> None:
    world.upstream.refuse("net", "CREATE", "ValidationException", "bad cidr")
    done = await world.apply([vpc("net")])
    assert done.execution is not None
    outcome = done.execution.outcomes[0]
    assert (outcome.status, outcome.error_code, outcome.error_message) == (
        ChangeOutcomeStatus.FAILED,
        "ValidationException",
        "bad cidr",
    )
    assert (await world.store.read_journal("web")).entries == []


async def test_a_failed_update_keeps_the_old_record_marked_failed(world: World) -> None:
    await world.apply([vpc("net", EnableDnsSupport=False)])
    before = (await world.state()).resource("net")
    world.upstream.fail("net", "UPDATE", "NotStabilized", "timeout")
    done = await world.apply([vpc("net", EnableDnsSupport=True)])
    assert done.status is PlanStatus.FAILED
    after = (await world.state()).resource("net")
    assert after is not None
    assert before is not None
    assert (after.id, after.declared, after.status) == (before.id, before.declared, ResourceStatus.FAILED)


async def test_a_failed_delete_keeps_the_resource_and_skips_deleting_what_it_depends_on(world: World) -> None:
    await world.apply([vpc("net"), subnet("sub", "net")])
    world.upstream.fail("sub", "DELETE", "DependencyViolation", "in use")
    done = await world.apply([])
    assert done.execution is not None
    outcomes = {o.name: o.status for o in done.execution.outcomes}
    assert outcomes == {"sub": ChangeOutcomeStatus.FAILED, "net": ChangeOutcomeStatus.SKIPPED}
    assert sorted(r.name for r in (await world.state()).resources) == ["net", "sub"]


async def test_throttling_that_escapes_the_client_is_survived(world: World) -> None:
    world.upstream.throttle("create", 2)
    world.upstream.throttle("status", 3)
    world.upstream.throttle("get", 1)
    done = await world.apply([vpc("net"), subnet("sub", "net")])
    assert done.status is PlanStatus.EXECUTED
    assert len(world.cloud.resources) == 2
    assert sum(1 for c in world.cloud.calls if c[0] == "create") == 4


async def test_throttling_beyond_the_retry_bound_fails_the_change_cleanly(world: World) -> None:
    world.upstream.throttle("create", 100)
    done = await world.apply([vpc("net")])
    assert done.status is PlanStatus.FAILED
    assert done.execution is not None
    assert done.execution.outcomes[0].error_code == "ThrottlingException"
    assert (await world.state()).resources == []


# ---- checkpoints and journal --------------------------------------------------------------------


async def test_checkpoint_writes_are_bounded_per_batch_of_results(tmp_path: Path) -> None:
    world = World(tmp_path, checkpoint_every=5)
    await world.apply([vpc(f"v{i}", f"10.{i}.0.0/16") for i in range(20)])
    # 20 results in batches of at least 5: at most 4 checkpoints, plus the final version.
    assert 2 <= world.store.writes <= 5
    history = await world.store.history("web")
    counts = [h.resource_count for h in reversed(history)]
    assert counts == sorted(counts)
    assert counts[-1] == 20


async def test_checkpoints_are_marked_and_the_final_version_carries_the_plans_description_and_summary(
    tmp_path: Path,
) -> None:
    world = World(tmp_path, checkpoint_every=5)
    plan = await world.apply([vpc(f"v{i}", f"10.{i}.0.0/16") for i in range(12)])
    newest, *earlier = await world.store.history("web")
    assert earlier, "no checkpoint was written"
    assert all(entry.checkpoint and entry.change_plan_id == plan.id for entry in earlier)
    assert not newest.checkpoint
    assert newest.change_description == f"plan 1 ({plan.id}: {plan.summary.text})"
    assert "12 to add" in newest.change_description


async def test_without_time_passing_or_a_full_batch_only_the_final_version_is_written(world: World) -> None:
    await world.apply([vpc(f"v{i}", f"10.{i}.0.0/16") for i in range(10)])
    assert world.store.writes == 1


async def test_the_journal_is_empty_after_a_finished_execution(world: World) -> None:
    await world.apply([vpc("net"), subnet("sub", "net")])
    assert (await world.store.read_journal("web")).entries == []
    assert world.store.locks == {}


def _polling_driver(**policy: float) -> CloudControlCalls:
    return CloudControlCalls(None, None, None, PollPolicy(**policy), anyio.sleep)  # type: ignore[arg-type]


def _in_progress(retry_after: datetime | None) -> ProgressEvent:
    return ProgressEvent(
        type_name="AWS::EC2::VPC",
        request_token="t",
        operation="CREATE",
        operation_status=OperationStatus.IN_PROGRESS,
        retry_after=retry_after,
    )


def test_the_first_poll_follows_retry_after_and_later_polls_never_come_sooner() -> None:
    driver = _polling_driver(initial=0.5, maximum=5.0, retry_after_margin=0.0)
    soon = datetime.now(UTC) + timedelta(seconds=0.05)
    assert 0.0 < driver._delay(_in_progress(soon), 0.5, first=True) <= 0.05
    assert driver._delay(_in_progress(soon), 0.75, first=False) == 0.75
    later = datetime.now(UTC) + timedelta(seconds=2)
    assert 1.9 < driver._delay(_in_progress(later), 0.75, first=False) <= 2.0
    past = datetime.now(UTC) - timedelta(seconds=1)
    assert driver._delay(_in_progress(past), 0.5, first=True) == 0.0
    assert driver._delay(_in_progress(past), 0.75, first=False) == 0.75  # never spins
    assert driver._delay(_in_progress(None), 0.5, first=True) == 0.5
    skewed = datetime.now(UTC) + timedelta(hours=1)
    assert driver._delay(_in_progress(skewed), 0.5, first=True) == 5.0  # capped at maximum


# ---- nothing sent: the plan is not used up --------------------------------------------------------


async def test_execute_with_the_upstream_unreachable_keeps_the_plan_approved_and_says_retry(world: World) -> None:
    plan = await world.approved([vpc("net")])
    world.upstream.go_down()
    error = await refused(world.execution.execute(plan.id, "ed"))
    assert error.code == "AWS_MCP_001"
    assert error.details["nothing_sent"] is True
    assert error.details["plan_status"] == "approved"
    assert (await world.projects.get_plan(plan.id)).status is PlanStatus.APPROVED
    assert world.cloud.calls == []
    assert (world.projects.audit[-1].action, world.projects.audit[-1].outcome) == ("plan.execute", "refused")

    world.upstream.down = None
    done = await world.execution.execute(plan.id, "ed")
    assert done.status is PlanStatus.EXECUTED


async def test_execute_against_a_read_only_upstream_refuses_up_front_and_keeps_the_plan_approved(world: World) -> None:
    plan = await world.approved([vpc("net")])
    world.upstream.refuses_changes = UpstreamRefusesChanges("read-only", details={"reason": "read_only"})
    error = await refused(world.execution.execute(plan.id, "ed"))
    assert error.code == "AWS_MCP_004"
    assert error.details["plan_status"] == "approved"
    assert (await world.projects.get_plan(plan.id)).status is PlanStatus.APPROVED
    assert world.cloud.calls == []


async def test_a_create_refused_as_already_exists_does_not_claim_the_other_owners_resource(world: World) -> None:
    world.upstream.fail("net", "CREATE", "AlreadyExists", "bucket name taken by another account")
    plan = await world.approved([vpc("net")])
    done = await world.execution.execute(plan.id, "ed")
    (outcome,) = done.execution.outcomes  # type: ignore[union-attr]
    assert outcome.status is ChangeOutcomeStatus.FAILED
    assert outcome.error_code == "AlreadyExists"
    assert outcome.physical_id is None
    assert (await world.state()).resources == []


async def test_a_create_whose_outcome_is_unknown_says_so_and_stays_in_the_journal(world: World) -> None:
    plan = await world.approved([vpc("net")])

    async def timed_out(*_args: object, **_kwargs: object) -> object:
        raise UpstreamUnavailable(
            "no answer", details={"reason": "CallTimedOut", "outcome_unknown": True, "may_have_executed": False}
        )

    world.upstream.create_resource = timed_out  # type: ignore[method-assign]
    done = await world.execution.execute(plan.id, "ed")
    (outcome,) = done.execution.outcomes  # type: ignore[union-attr]
    assert outcome.status is ChangeOutcomeStatus.FAILED
    assert outcome.in_doubt is True
    assert outcome.error_code == "AWS_MCP_001"
    assert len((await world.store.read_journal("web")).entries) == 1


async def test_a_change_waiting_on_a_slow_upstream_reports_progress_messages_while_it_waits(world: World) -> None:
    world.execution.heartbeat_seconds = 0.01
    plan = await world.approved([vpc("net")])
    heard = anyio.Event()
    create = world.upstream.create_resource

    async def slow_create(*args: object, **kwargs: object) -> ProgressEvent:
        await heard.wait()  # answers only once a "still waiting" message went out
        return await create(*args, **kwargs)  # type: ignore[arg-type]

    async def report(done: float, total: float | None, message: str) -> None:
        await world.report(done, total, message)
        if message.startswith("Still waiting"):
            heard.set()

    world.upstream.create_resource = slow_create  # type: ignore[method-assign]
    with anyio.fail_after(30):
        done = await world.execution.execute(plan.id, "ed", report)
    assert done.status is PlanStatus.EXECUTED
    waiting = [m for _, _, m in world.progress if m.startswith("Still waiting")]
    assert waiting
    assert "net" in waiting[0]
    assert_progress_strictly_increases_to(world, 1)


async def test_a_create_that_ran_but_went_unanswered_is_reconciled_at_once_and_the_plan_tells_the_truth(
    world: World,
) -> None:
    plan = await world.approved([vpc("net")])
    create = world.upstream.create_resource
    answered = 0

    async def sent_but_unanswered(*args: object, **kwargs: object) -> ProgressEvent:
        nonlocal answered
        event = await create(*args, **kwargs)  # type: ignore[arg-type]
        answered += 1
        if answered == 1:  # AWS got it; the answer was lost
            raise UpstreamUnavailable(
                "no answer", details={"reason": "CallTimedOut", "outcome_unknown": True, "may_have_executed": False}
            )
        return event

    world.upstream.create_resource = sent_but_unanswered  # type: ignore[method-assign]
    done = await world.execution.execute(plan.id, "ed")
    assert done.status is PlanStatus.EXECUTED
    (outcome,) = done.execution.outcomes  # type: ignore[union-attr]
    assert (outcome.status, outcome.in_doubt) == (ChangeOutcomeStatus.SUCCEEDED, False)
    assert outcome.physical_id == world.upstream.identifier_of("net")
    assert [r.name for r in (await world.state()).resources] == ["net"]
    assert (await world.store.read_journal("web")).entries == []
    assert len([k for k in world.cloud.resources if k[0] == "AWS::EC2::VPC"]) == 1


async def test_an_execution_cut_short_keeps_what_was_settled_as_a_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One change at a time; the third create never answers (a server stopping past its grace cancels it).
    world = World(tmp_path, parallelism=1)
    create = world.upstream.create_resource
    calls = 0

    async def third_hangs(*args: object, **kwargs: object) -> ProgressEvent:
        nonlocal calls
        calls += 1
        if calls == 3:
            await anyio.sleep_forever()
        return await create(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(world.upstream, "create_resource", third_hangs)
    plan = await world.approved([vpc(f"v{i}", f"10.{i}.0.0/16") for i in range(4)])
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(world.execution.execute, plan.id, "ed", world.report)
        with anyio.fail_after(10):  # a hang guard
            while calls < 3:
                await anyio.sleep(0.01)
        tasks.cancel_scope.cancel()
    state = await world.state()
    newest, *_ = await world.store.history("web")
    assert sorted(r.name for r in state.resources) == ["v0", "v1"]
    assert newest.checkpoint
    assert (await world.projects.get_plan(plan.id)).status is PlanStatus.EXECUTING
    assert world.store.locks == {}  # the lock is released on the way out


# ---- Snapshot policies --------------------------------------------------------------------------

CLUSTER = res("db", "AWS::RDS::DBCluster", Engine="aurora-postgresql", MasterUsername="app")


async def test_a_snapshot_policy_on_a_cluster_creates_its_snapshot_through_cloud_control_before_deleting(
    world: World,
) -> None:
    await world.apply([CLUSTER], policies={"db": {"deletion_policy": "Snapshot"}})
    cluster_id = world.upstream.identifier_of("db") or next(
        i for (t, i) in world.cloud.resources if t == "AWS::RDS::DBCluster"
    )
    plan = await world.plan([])
    [change] = plan.changes
    assert change.snapshot == "snapshot_first"
    await world.approvals.approve(plan.id, "alice", method=ApprovalMethod.ELICITATION)
    done = await world.execution.execute(plan.id, "ed", world.report)
    assert done.status is PlanStatus.EXECUTED
    mutations = [(kind, type_name) for kind, type_name, _ in world.cloud.calls if kind in ("create", "delete")]
    assert mutations[-2:] == [("create", "AWS::RDS::ClusterSnapshot"), ("delete", "AWS::RDS::DBCluster")]
    [snapshot] = [p for (t, _), p in world.cloud.resources.items() if t == "AWS::RDS::ClusterSnapshot"]
    assert snapshot["DBClusterIdentifier"] == cluster_id
    assert snapshot["DBClusterSnapshotIdentifier"].startswith("infra-mcp-db-")
    assert (await world.state()).resources == []  # the snapshot is AWS's to keep, not the project's


async def test_a_cluster_whose_snapshot_fails_is_not_deleted(world: World) -> None:
    await world.apply([CLUSTER], policies={"db": {"deletion_policy": "Snapshot"}})
    world.upstream.fail("AWS::RDS::ClusterSnapshot", "CREATE", "SnapshotQuotaExceeded", "too many snapshots")
    plan = await world.approved([])
    done = await world.execution.execute(plan.id, "ed", world.report)
    assert done.status is PlanStatus.FAILED
    assert [kind for kind, t, _ in world.cloud.calls if t == "AWS::RDS::DBCluster"].count("delete") == 0
    assert [r.type for r in (await world.state()).resources] == ["AWS::RDS::DBCluster"]
    [outcome] = [o for o in done.execution.outcomes if o.name == "db"]  # type: ignore[union-attr]
    assert outcome.error_code == "SnapshotQuotaExceeded"
    assert "not deleted" in (outcome.error_message or "")


async def test_a_volume_under_a_snapshot_policy_is_deleted_without_a_snapshot_as_the_plan_said(world: World) -> None:
    volume = res("data", "AWS::EC2::Volume", AvailabilityZone="us-east-1a", Size=10)
    await world.apply([volume], policies={"data": {"deletion_policy": "Snapshot"}})
    plan = await world.plan([])
    assert plan.changes[0].snapshot == "not_taken"
    await world.approvals.approve(plan.id, "alice", method=ApprovalMethod.ELICITATION)
    assert (await world.execution.execute(plan.id, "ed", world.report)).status is PlanStatus.EXECUTED
    assert not [t for kind, t, _ in world.cloud.calls if kind == "create" and "Snapshot" in t]


async def test_a_replaced_cluster_under_update_replace_policy_snapshot_is_snapshotted_before_the_old_one_goes(
    world: World,
) -> None:
    await world.apply([CLUSTER], policies={"db": {"replace_policy": "Snapshot"}})
    old_id = next(i for (t, i) in world.cloud.resources if t == "AWS::RDS::DBCluster")
    changed = res("db", "AWS::RDS::DBCluster", Engine="aurora-mysql", MasterUsername="app")
    plan = await world.plan([changed], policies={"db": {"replace_policy": "Snapshot"}})
    [change] = plan.changes
    assert (change.action, change.snapshot) == (Action.REPLACE, "snapshot_first")
    await world.approvals.approve(plan.id, "alice", method=ApprovalMethod.ELICITATION)
    assert (await world.execution.execute(plan.id, "ed", world.report)).status is PlanStatus.EXECUTED
    snapshots = [p for (t, _), p in world.cloud.resources.items() if t == "AWS::RDS::ClusterSnapshot"]
    assert [s["DBClusterIdentifier"] for s in snapshots] == [old_id]
    mutations = [(kind, t) for kind, t, _ in world.cloud.calls if kind in ("create", "delete")]
    assert mutations.index(("create", "AWS::RDS::ClusterSnapshot")) < mutations.index(("delete", "AWS::RDS::DBCluster"))

"""A state lock left by a dead server process of this host is broken, never one of a live or remote holder."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from infra_mcp.domain.common import utcnow
from infra_mcp.domain.plan import PlanStatus
from infra_mcp.domain.state import LockInfo
from infra_mcp.errors import InfraError, StateLocked
from infra_mcp.services.execution.service import dead_local_holder, pid_alive
from infra_mcp.stores.state_local import LocalStateStore
from infra_mcp.stores.versioned_state import locked
from tests.fakes.cloud_control import SimulatedCrash, World, vpc
from tests.fakes.stores import FakeStateStore

HOST = socket.gethostname()
DEAD_PID = 2**22 + 1  # above Linux's PID_MAX_LIMIT: never a running process


class RealLockRefusals(FakeStateStore):
    """The fake store, refusing a held lock with the details the real stores give (lock_id, expires_at)."""

    async def acquire_lock(self, project_id: str, *, owner: str, operation: str, lease_seconds: float) -> LockInfo:
        held = self.locks.get(project_id)
        if held is not None and held.expires_at > utcnow():
            raise locked(project_id, held)
        return await super().acquire_lock(project_id, owner=owner, operation=operation, lease_seconds=lease_seconds)


@pytest.fixture
def world(tmp_path: Path) -> World:
    world = World(tmp_path)
    world.store = world.states.store = RealLockRefusals()
    world.execution.process_alive = lambda pid: pid != DEAD_PID
    return world


def plant_lock(world: World, owner: str) -> LockInfo:
    now = utcnow()
    lock = LockInfo(
        lock_id="left-by-the-crash",
        owner=owner,
        operation="execute plan-0001",
        acquired_at=now - timedelta(seconds=5),
        expires_at=now + timedelta(seconds=55),
    )
    world.store.locks["web"] = lock
    return lock


async def crashed(world: World) -> str:
    """An execution killed mid-request: its journal entry and 'executing' plan are left behind."""
    plan = await world.approved([vpc("net")])
    world.upstream.crash_after_issuing("net", "CREATE")
    with pytest.raises(SimulatedCrash):
        await world.execution.execute(plan.id, "ed")
    world.upstream.settle()
    return plan.id


async def test_reconcile_all_breaks_the_lock_of_a_dead_process_of_this_host_and_reconciles(world: World) -> None:
    plan_id = await crashed(world)
    plant_lock(world, f"ed@{HOST}:{DEAD_PID}:0badf00d")
    with capture_logs() as logs:
        reports = await world.execution.reconcile_all()
    assert [r.project_id for r in reports] == ["web"]
    assert (await world.projects.get_plan(plan_id)).status is PlanStatus.EXECUTED
    assert world.store.locks == {}  # ours was released after reconciling
    (broken,) = [e for e in logs if e["event"] == "state_lock_broken_dead_holder"]
    assert (broken["log_level"], broken["previous_owner"]) == ("warning", f"ed@{HOST}:{DEAD_PID}:0badf00d")
    (audited,) = [e for e in world.projects.audit if e.action == "state.lock_break"]
    assert (audited.target, audited.details["previous_owner"]) == ("left-by-the-crash", broken["previous_owner"])


@pytest.mark.parametrize(
    "owner",
    [
        f"ed@{HOST}:{os.getpid()}:0badf00d",  # a live process of this host (here: ourselves)
        f"ed@another-host:{DEAD_PID}:0badf00d",  # a pid of another host says nothing about its liveness here
        "someone",  # not ours to interpret
    ],
)
async def test_a_live_or_remote_or_unknown_holder_keeps_its_lock(world: World, owner: str) -> None:
    world.execution.process_alive = pid_alive  # the real check
    plan_id = await crashed(world)
    lock = plant_lock(world, owner)
    assert await world.execution.reconcile_all() == []  # skipped with a warning, as before
    with pytest.raises(StateLocked):
        await world.execution.reconcile("web")
    assert world.store.locks["web"] == lock
    assert (await world.projects.get_plan(plan_id)).status is PlanStatus.EXECUTING
    assert not [e for e in world.projects.audit if e.action == "state.lock_break"]


async def test_execute_takes_over_from_a_dead_holder_and_refuses_beside_a_live_one(world: World) -> None:
    plan = await world.approved([vpc("net")])
    plant_lock(world, f"ed@{HOST}:{os.getpid()}:0badf00d")
    with pytest.raises(InfraError) as caught:
        await world.execution.execute(plan.id, "ed")
    assert caught.value.code == "STATE_003"
    plant_lock(world, f"ed@{HOST}:{DEAD_PID}:0badf00d")
    assert (await world.execution.execute(plan.id, "ed")).status is PlanStatus.EXECUTED


async def test_the_real_store_releases_the_dead_holders_lock_by_its_id(world: World, tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path / "state")
    dead = await store.acquire_lock("web", owner=f"ed@{HOST}:{DEAD_PID}:0badf00d", operation="x", lease_seconds=60)
    mine = await world.execution._lock(store, "web", user="ed", operation="reconcile")
    assert mine.lock_id != dead.lock_id
    with pytest.raises(StateLocked) as caught:  # now held by us, alive: not broken for another taker
        await world.execution._lock(store, "web", user="ed", operation="reconcile")
    assert caught.value.details["lock_id"] == mine.lock_id
    await store.release_lock("web", mine)


def test_a_dead_local_holder_is_recognised_only_from_a_well_formed_owner_of_this_host() -> None:
    def dead(owner: str) -> bool:
        return dead_local_holder(owner, hostname="box", alive=lambda pid: pid != 42)

    assert dead("alice@box:42:abcd1234")
    assert dead("alice@example.com@box:42:abcd1234")  # a user name with '@'
    assert not dead("alice@box:43:abcd1234")  # alive
    assert not dead("alice@other:42:abcd1234")  # another host
    assert not dead("box:42:abcd1234")  # no user: not the format we write
    assert not dead("alice@box:forty-two:abcd1234")
    assert not dead("alice@box:0:abcd1234")
    assert not dead("alice@box:42")


def test_pid_alive_tells_a_running_process_from_one_that_exited() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert pid_alive(os.getpid())
    assert not pid_alive(child.pid)
    assert pid_alive(1)  # init: exists, even where signalling it is not permitted

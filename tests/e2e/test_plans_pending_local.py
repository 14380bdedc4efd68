"""``infra-mcp plans pending`` on one machine: the plans waiting for a person, read as the OS login user."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra_mcp.plans_cli import login_user
from tests.e2e.conftest import ClientFactory, call_ok
from tests.e2e.loop_helpers import make_plan, make_project, plans_without_terminal, vpc_stack

pytestmark = pytest.mark.slow


async def test_plans_pending_lists_what_waits_and_whether_you_may_approve_it(
    connect: ClientFactory, data_dir: Path
) -> None:
    async with connect("alice") as alice:
        await make_project(alice, allow_self_approval=False)
        members = [{"user": "alice", "role": "owner"}, {"user": login_user(), "role": "approver"}]
        await call_ok(alice, "update_project", {"project_id": "web", "members": members})
        plan_id = await make_plan(alice, vpc_stack())
    shown = plans_without_terminal(data_dir, "pending")
    assert shown.returncode == 0, shown.stderr
    line = next(row for row in shown.stdout.splitlines() if plan_id in row)
    assert "web" in line
    assert "yes" in line

"""``infra-mcp plans list | show | approve | reject``: human approval out of band.

For MCP clients that cannot show confirmation prompts, a person reviews and approves plans in
a terminal, on the same database the server uses. The approver is the OS user (or
``INFRA_MCP_USER``), or ``--user``. This is a terminal program: printing is its job.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import anyio
from rich.console import Console
from rich.table import Table

from infra_mcp.container import App, open_app
from infra_mcp.domain.plan import ApprovalMethod, PlanStatus
from infra_mcp.domain.render import render_plan
from infra_mcp.errors import InfraError
from infra_mcp.server.plan_models import redacted
from infra_mcp.settings import Settings

console = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def run_plans_command(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {"user": args.user} if args.user else {}
    settings = Settings(**overrides)
    try:
        return anyio.run(_dispatch, settings, args)
    except InfraError as exc:
        err.print(f"[bold red]{exc.code}[/bold red]: {exc.message}")
        return 1


async def _dispatch(settings: Settings, args: argparse.Namespace) -> int:
    # No reconciliation here: a person approving should not start talking to AWS.
    async with open_app(settings, reconcile=False) as app:
        command = args.plans_command
        if command == "list":
            return await _list(app, args.project_id, args.status)
        if command == "show":
            return await _show(app, args.plan_id)
        if command == "approve":
            return await _approve(app, args.plan_id, args.comment, args.yes)
        return await _reject(app, args.plan_id, args.reason)


async def _list(app: App, project_id: str, status: str | None) -> int:
    wanted = PlanStatus(status) if status else None
    plans = await app.planning.list_plans(project_id, app.settings.user, wanted)
    table = Table("plan", "status", "risk", "summary", "cost Δ/month", "author", "created", title=project_id)
    table.columns[0].no_wrap = True  # ids are copied into `plans approve`: never cut them
    for plan in plans:
        table.add_row(
            plan.id,
            plan.status.value,
            plan.risk.value,
            plan.summary.text,
            f"{plan.cost.monthly_delta:+.2f}",
            plan.author,
            plan.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    console.print(table)
    return 0


async def _show(app: App, plan_id: str) -> int:
    plan = await app.planning.get_plan(plan_id, app.settings.user)
    console.print(f"[bold]{plan.id}[/bold] ({plan.status.value}) in project {plan.project_id}, by {plan.author}")
    if plan.description:
        console.print(plan.description)
    console.print(render_plan(redacted(plan)), markup=False)
    return 0


async def _approve(app: App, plan_id: str, comment: str, yes: bool) -> int:
    user = app.settings.user
    plan, _ = await app.approvals.check_approvable(plan_id, user)
    console.print(render_plan(redacted(plan)), markup=False)
    if not yes:
        if not sys.stdin.isatty():
            err.print("Refusing to approve without a terminal to confirm in; pass --yes after reading the plan.")
            return 2
        answer = console.input(f"Approve {plan.id} as [bold]{user}[/bold]? Type 'yes' to approve: ")
        if answer.strip().lower() != "yes":
            await app.approvals.record_declined(plan.id, user, "declined", "declined at the terminal")
            console.print("Not approved. The plan stays pending.")
            return 1
    approved = await app.approvals.approve(plan.id, user, method=ApprovalMethod.OUT_OF_BAND, comment=comment)
    expires = approved.approval.expires_at.isoformat() if approved.approval else "?"
    console.print(
        f"[green]Approved[/green] {approved.id} as {user} (valid until {expires}). The agent can now call execute_plan."
    )
    return 0


async def _reject(app: App, plan_id: str, reason: str) -> int:
    rejected = await app.approvals.reject(plan_id, app.settings.user, reason)
    console.print(f"[yellow]Rejected[/yellow] {rejected.id}. It can never be approved or executed.")
    return 0

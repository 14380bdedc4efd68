"""``infra-mcp plans list | show | approve | reject``: human approval out of band.

For MCP clients that cannot show confirmation prompts, a person reviews and approves plans in a
terminal, on the same database the server uses. This is a terminal program: printing is its job.

Who acts is the OS login user of the process (its real uid's passwd entry). No flag and no
environment variable changes it: ``INFRA_MCP_USER`` names the *server's* acting user, and letting
it name the approver here would let anything that can set an environment variable approve as
anyone. Approving a plan that needs a person's confirmation requires an interactive terminal
(the controlling tty, not a pipe) and typing a one-time code printed only on it.
"""

from __future__ import annotations

import argparse
import os
import pwd
import secrets
from typing import Any, TextIO

import anyio
from rich import box
from rich.console import Console
from rich.table import Table

from infra_mcp.container import App, open_app
from infra_mcp.domain.plan import ApprovalMethod, Plan, PlanStatus
from infra_mcp.domain.redaction import redacted
from infra_mcp.domain.render import render_plan
from infra_mcp.domain.text import COMMENT_MAX, DESCRIPTION_MAX, clean_untrusted, quoted_as_author
from infra_mcp.errors import InfraError
from infra_mcp.settings import Settings

console = Console(highlight=False)
err = Console(stderr=True, highlight=False)

# Unambiguous letters and digits (no 0/O, 1/I/L): read off a screen and typed by a person.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 6


def login_user() -> str:
    """The OS login name of the real uid (never an environment variable)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # no passwd entry (containers): the uid itself
        return f"uid-{os.getuid()}"


def new_code() -> str:
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return f"{raw[:3]}-{raw[3:]}"


def _normalise(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def run_plans_command(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {"user": login_user()}
    settings = Settings(**overrides)
    server = getattr(args, "server", None) or settings.server_url
    if server:
        # A team server: no database here; the server acts as the user the person's token names.
        from infra_mcp.plans_remote import read_token, run_remote

        secret = settings.token.get_secret_value() if settings.token else None
        return run_remote(args, server, read_token(secret, getattr(args, "token_file", None)))
    return anyio.run(plans_command, settings, args)


async def plans_command(settings: Settings, args: argparse.Namespace) -> int:
    """Run one ``plans`` action as ``settings.user``; an InfraError is shown, and the status is 1."""
    try:
        return await _dispatch(settings, args)
    except InfraError as exc:
        err.print(f"[bold red]{exc.code}[/bold red]: {exc.message}", markup=True, highlight=False)
        return 1


async def _dispatch(settings: Settings, args: argparse.Namespace) -> int:
    # No reconciliation here: a person approving should not start talking to AWS.
    async with open_app(settings, reconcile=False) as app:
        command = args.plans_command
        if command == "list":
            return await _list(app, args.project_id, args.status)
        if command == "pending":
            return await _pending(app)
        if command == "show":
            return await _show(app, args.plan_id)
        if command == "approve":
            return await _approve(app, args.plan_id, args.comment, args.yes)
        return await _reject(app, args.plan_id, args.reason)


def _counts(plan: Plan) -> str:
    """``+3 ~1 ±1 -2``: the summary in a column narrow enough for an 80-column terminal."""
    summary = plan.summary
    parts = [("+", summary.create), ("~", summary.update), ("±", summary.replace), ("-", summary.delete)]
    shown = " ".join(f"{sign}{count}" for sign, count in parts if count)
    return shown or "no changes"


async def _list(app: App, project_id: str, status: str | None) -> int:
    wanted = PlanStatus(status) if status else None
    plans = await app.planning.list_plans(project_id, app.settings.user, wanted)
    # Fits 80 columns: a borderless table, the counts instead of the summary sentence, a short date.
    table = Table(
        "plan",
        "status",
        "risk",
        "changes",
        "$/month",
        "by",
        "created",
        title=project_id,
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for column in table.columns:
        column.no_wrap = True  # ids are copied into `plans approve`: never cut or wrap them
    table.columns[5].max_width = 12
    table.columns[5].overflow = "ellipsis"
    for plan in plans:
        table.add_row(
            plan.id,
            plan.status.value,
            plan.risk.value,
            _counts(plan),
            f"{plan.cost.monthly_delta:+.2f}",
            clean_untrusted(plan.author, 128),
            plan.created_at.strftime("%m-%d %H:%M"),
        )
    console.print(table)
    if plans:
        console.print("`infra-mcp plans show <plan>` for a plan's diff.", markup=False)
    return 0


async def _pending(app: App) -> int:
    table = Table("plan", "project", "risk", "changes", "by", "you may approve", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in table.columns:
        column.no_wrap = True
    for plan, may in await app.approvals.awaiting(app.settings.user):
        table.add_row(
            plan.id,
            plan.project_id,
            plan.risk.value,
            _counts(plan),
            clean_untrusted(plan.author, 128),
            "yes" if may else "no (someone else)",
        )
    console.print(table)
    return 0


async def _show(app: App, plan_id: str) -> int:
    plan = await app.planning.get_plan(plan_id, app.settings.user)
    console.print(
        f"{plan.id} ({plan.status.value}) in project {plan.project_id}, by {clean_untrusted(plan.author, 128)}",
        markup=False,
    )
    console.print(render_plan(redacted(plan.model_copy(update={"description": ""}))), markup=False)
    if plan.description:
        console.print(quoted_as_author(plan.description, plan.author, DESCRIPTION_MAX), markup=False)
    return 0


class _Terminal:
    """The process's controlling terminal, opened once for reading and writing."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.reader: TextIO = open(fd, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
        self.writer: TextIO = open(fd, "w", encoding="utf-8", closefd=False)  # noqa: SIM115

    def __enter__(self) -> _Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.reader.close()
        self.writer.close()
        os.close(self.fd)


def _open_terminal() -> _Terminal | None:
    """The controlling terminal, or None (no tty: a pipe, a service, an agent's shell)."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return None
    if not os.isatty(fd):
        os.close(fd)
        return None
    return _Terminal(fd)


async def _approve(app: App, plan_id: str, comment: str, yes: bool) -> int:
    user = app.settings.user
    plan, project = await app.approvals.check_approvable(plan_id, user)
    needs_person = app.approvals.requires_human(project)
    if yes and needs_person:
        err.print(
            f"Project {project.id!r} requires a person to confirm every plan: --yes is refused. Run the command "
            "again without --yes in your own terminal and type the code it shows.",
            markup=False,
        )
        return 2
    if not yes:
        tty = _open_terminal()
        if tty is None:
            err.print(
                "Refusing to approve: no interactive terminal. A person approves by running this command in "
                "their own terminal and typing the one-time code it shows there.",
                markup=False,
            )
            return 2
        with tty:
            person = _confirm_on(tty, plan_id=plan.id, user=user, diff=render_plan(redacted(plan)), plan=plan)
        if person is None:
            await app.approvals.record_declined(
                plan.id, user, "declined", person_comment="wrong or no code typed at the terminal"
            )
            console.print("Not approved: the code did not match. The plan stays pending.", markup=False)
            return 1
        comment = comment or person
    approved = await app.approvals.approve(
        plan.id, user, method=ApprovalMethod.OUT_OF_BAND, person_comment=comment[:COMMENT_MAX]
    )
    expires = approved.approval.expires_at.isoformat() if approved.approval else "?"
    console.print(
        f"Approved {approved.id} as {user} (valid until {expires}). The agent can now call execute_plan.",
        markup=False,
    )
    return 0


def _confirm_on(tty: _Terminal, *, plan_id: str, user: str, diff: str, plan: Any) -> str | None:
    """Show the plan and a one-time code on the terminal; the person's note if they typed the code, else None.

    The code is written to the terminal only (not stdout, not a log): whoever approves must be
    reading that screen.
    """
    code = new_code()
    screen = Console(file=tty.writer, highlight=False, force_terminal=False)
    screen.print(diff, markup=False)
    if plan.description:
        screen.print(quoted_as_author(plan.description, plan.author, DESCRIPTION_MAX), markup=False)
    screen.print(f"\nTo approve {plan_id} as {user}, type this code: {code}", markup=False)
    tty.writer.write("Code (anything else declines): ")
    tty.writer.flush()
    answer = tty.reader.readline()
    if not answer or _normalise(answer) != _normalise(code):
        return None
    tty.writer.write("Optional note for the audit log (Enter to skip): ")
    tty.writer.flush()
    return clean_untrusted(tty.reader.readline(), COMMENT_MAX)


async def _reject(app: App, plan_id: str, reason: str) -> int:
    rejected = await app.approvals.reject(plan_id, app.settings.user, clean_untrusted(reason, COMMENT_MAX))
    console.print(f"Rejected {rejected.id}. It can never be approved or executed.", markup=False)
    return 0

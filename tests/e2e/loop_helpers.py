"""Helpers for the plan -> approve -> execute e2e tests: elicitation answers, desired states,
the plan row in SQLite, and a direct look at the sandbox's world.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pty
import re
import select
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mcp import Client
from mcp_types import ElicitRequestParams, ElicitResult
from rich.console import Console

from infra_mcp import plans_cli
from infra_mcp.cli import _parser as cli_parser
from infra_mcp.domain.integrity import Notary
from infra_mcp.domain.plan import Plan
from infra_mcp.sandbox.cloud import SandboxCloud
from infra_mcp.sandbox.world import FileWorldStore
from infra_mcp.settings import Settings
from tests.e2e.conftest import call_ok, read_json

ElicitationCallback = Callable[[Any, ElicitRequestParams], Any]


class Human:
    """An elicitation callback that answers like a person would, and remembers what it was asked."""

    def __init__(self, action: str = "accept", *, approve: Any = True, comment: Any = "ok") -> None:
        self.action = action
        self.approve = approve
        self.comment = comment
        self.prompts: list[ElicitRequestParams] = []

    async def __call__(self, _ctx: Any, params: ElicitRequestParams) -> ElicitResult:
        self.prompts.append(params)
        if self.action != "accept":
            return ElicitResult(action=self.action)  # type: ignore[arg-type]
        return ElicitResult(action="accept", content={"approve": self.approve, "comment": self.comment})


def vpc_stack(prefix: str = "net", subnets: int = 1, buckets: int = 0, cidr: str = "10.0.0.0/16") -> dict[str, Any]:
    """A VPC, ``subnets`` subnets in it and ``buckets`` independent buckets (unique names per ``prefix``)."""
    base = cidr.split(".")[0] + "." + cidr.split(".")[1]
    resources: list[dict[str, Any]] = [
        {"name": f"{prefix}-vpc", "type": "AWS::EC2::VPC", "properties": {"CidrBlock": cidr}, "tags": {"env": "test"}}
    ]
    resources += [
        {
            "name": f"{prefix}-subnet-{i}",
            "type": "AWS::EC2::Subnet",
            "properties": {"VpcId": {"Ref": f"{prefix}-vpc"}, "CidrBlock": f"{base}.{i + 1}.0/24"},
        }
        for i in range(subnets)
    ]
    resources += [
        {"name": f"{prefix}-bucket-{i}", "type": "AWS::S3::Bucket", "properties": {"BucketName": f"{prefix}-b-{i}"}}
        for i in range(buckets)
    ]
    return {"resources": resources}


async def make_project(client: Client, project_id: str = "web", **approval: Any) -> None:
    """Create a project; with keyword arguments, set its approval settings too."""
    await call_ok(client, "create_project", {"project_id": project_id})
    if approval:
        await call_ok(client, "update_project", {"project_id": project_id, "settings": {"approval": approval}})


async def make_plan(client: Client, desired: dict[str, Any], project_id: str = "web") -> str:
    plan = await call_ok(client, "plan_changes", {"project_id": project_id, "desired_state": desired})
    assert plan["status"] == "pending"
    return str(plan["plan_id"])


async def approve(client: Client, plan_id: str) -> dict[str, Any]:
    answer = await call_ok(client, "approve_plan", {"plan_id": plan_id, "comment": "reviewed"})
    assert answer["outcome"] == "approved", answer
    return answer


async def plan_of(client: Client, plan_id: str) -> dict[str, Any]:
    """The full plan, from the resource get_plan points at."""
    view = await call_ok(client, "get_plan", {"plan_id": plan_id})
    return dict(await read_json(client, view["plan_uri"]))


async def audit(client: Client, project_id: str = "web") -> list[dict[str, Any]]:
    """The whole audit log, newest first, following the pages."""
    events: list[dict[str, Any]] = []
    uri: str | None = f"infra://projects/{project_id}/audit"
    while uri is not None:
        page = await read_json(client, uri)
        events.extend(page["events"])
        uri = page["next"]
    return events


def events(log: list[dict[str, Any]], action: str, target: str | None = None) -> list[dict[str, Any]]:
    return [e for e in log if e["action"] == action and (target is None or e["target"] == target)]


# ---- the database, edited as an attacker (or a buggy tool) with file access would -------------------


def database(data_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(data_dir / "infra-mcp.sqlite3", timeout=30)


def edit_plan_doc(data_dir: Path, plan_id: str, edit: Callable[[dict[str, Any]], None]) -> None:
    """Change a plan's stored JSON in place (and its indexed status column, if the edit changed it)."""
    with database(data_dir) as db:
        (raw,) = db.execute("SELECT doc FROM plans WHERE id = ?", (plan_id,)).fetchone()
        doc = json.loads(raw)
        edit(doc)
        db.execute("UPDATE plans SET doc = ?, status = ? WHERE id = ?", (json.dumps(doc), doc["status"], plan_id))
    db.close()


def server_notary(data_dir: Path) -> Notary:
    """The notary of the server whose data is in ``data_dir`` (its key file is there)."""
    return Notary((data_dir / "secret.key").read_bytes())


def age_approval(data_dir: Path, plan_id: str, minutes: int) -> None:
    """Move a plan's approval ``minutes`` into the past, as if that much time had passed since.

    The approval is re-signed with the server's key: this stands in for the clock moving, not
    for an attacker (who has no key; see the tampering tests).
    """

    def shift(doc: dict[str, Any]) -> None:
        for key in ("approved_at", "expires_at"):
            when = datetime.fromisoformat(doc["approval"][key].replace("Z", "+00:00"))
            doc["approval"][key] = (when - timedelta(minutes=minutes)).isoformat()
        plan = Plan.model_validate(doc)
        assert plan.approval is not None
        doc["approval"]["mac"] = server_notary(data_dir).approval_mac(plan, plan.approval)

    edit_plan_doc(data_dir, plan_id, shift)


def stored_plan(data_dir: Path, plan_id: str) -> dict[str, Any]:
    """A plan as the database holds it (readable while no server runs)."""
    with database(data_dir) as db:
        (raw,) = db.execute("SELECT doc FROM plans WHERE id = ?", (plan_id,)).fetchone()
    db.close()
    return dict(json.loads(raw))


def expire_state_lock(data_dir: Path, project_id: str = "web") -> bool:
    """Make the project's state lock lease look expired (time passing after a crash). False if none."""
    path = data_dir / "state" / project_id / "state.lock"
    if not path.exists():
        return False
    lock = json.loads(path.read_text())
    lock["expires_at"] = (datetime.now(UTC) - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    path.write_text(json.dumps(lock))
    return True


# ---- the sandbox's world, read directly --------------------------------------------------------------


def sandbox_world(data_dir: Path) -> set[tuple[str, str]]:
    """Every (type, identifier) the sandbox cloud holds, once every request already sent has ended.

    A sandbox request ends lazily (at the next call after its latency). Reading with a clock an hour
    ahead ends them all, so a request nobody is tracking any more still shows up as what it will be.
    """
    path = data_dir / "sandbox" / "cloud.json"
    if not path.exists():
        return set()
    later = datetime.now(UTC) + timedelta(hours=1)
    cloud = SandboxCloud(FileWorldStore(path), clock=lambda: later)
    cloud.call("ListResources", {"TypeName": "AWS::EC2::VPC"})
    with cloud.store.transaction() as txn:
        regions = txn.data["resources"]
        return {(type_name, ident) for types in regions.values() for type_name, ids in types.items() for ident in ids}


async def state_resources(client: Client, project_id: str = "web") -> set[tuple[str, str]]:
    state = await read_json(client, f"infra://projects/{project_id}/state")
    return {(r["type"], r["id"]) for r in state["resources"]}


def plans_without_terminal(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``infra-mcp plans ARGS`` the way an agent's shell tool runs it: no terminal, no stdin."""
    full = {**os.environ, "INFRA_MCP_DATA_DIR": str(data_dir), "INFRA_MCP_LOG_LEVEL": "WARNING", "COLUMNS": "200"}
    full.pop("INFRA_MCP_USER", None)
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "infra_mcp", "plans", *args],
        env=full,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        start_new_session=True,  # no controlling terminal, even when pytest runs in one
    )


TERMINAL_CODE = re.compile(rb"type this code: ([A-Z0-9]{3}-[A-Z0-9]{3})")


def plans_at_terminal(
    data_dir: Path,
    *args: str,
    answer: Callable[[str], str] | None = None,
    timeout: float = 60.0,
    columns: int = 200,
    **extra_env: str,
) -> tuple[int, str]:
    """Run ``infra-mcp plans ARGS`` in a pseudo-terminal, as a person at a terminal would.

    ``answer`` gets the code the command shows and returns what the person types (default: the
    code itself). Returns the exit status and everything the terminal showed.
    """
    env = {**os.environ, "INFRA_MCP_DATA_DIR": str(data_dir), "INFRA_MCP_LOG_LEVEL": "WARNING", "COLUMNS": str(columns)}
    env.update(extra_env)
    pid, fd = pty.fork()
    if pid == 0:  # the child: its controlling terminal is the pty
        os.execve(sys.executable, [sys.executable, "-m", "infra_mcp", "plans", *args], env)  # noqa: S606 - our own CLI, no shell
    shown = b""
    typed_code = typed_note = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # the child closed the terminal: it is ending
                    chunk = b""
                if not chunk:
                    _, status = os.waitpid(pid, 0)
                    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")
                shown += chunk
            found = TERMINAL_CODE.search(shown)
            if found and not typed_code:
                code = found.group(1).decode()
                os.write(fd, ((answer or (lambda c: c))(code) + "\n").encode())
                typed_code = True
            if typed_code and not typed_note and b"Optional note" in shown:
                os.write(fd, b"checked the diff\n")
                typed_note = True
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                with contextlib.suppress(OSError):
                    while chunk := os.read(fd, 65536):
                        shown += chunk
                return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise AssertionError(f"plans {args} did not finish in {timeout} s; the terminal showed: {shown[-2000:]!r}")
    finally:
        os.close(fd)


class _Person(threading.Thread):
    """At the other end of a pseudo-terminal: reads what it shows, types the code and a note."""

    def __init__(self, master: int, answer: Callable[[str], str] | None, note: str) -> None:
        super().__init__(daemon=True)
        self.master, self.answer, self.note = master, answer, note
        self.shown = b""

    def run(self) -> None:
        typed_code = False
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # the command closed its end of the terminal
                return
            if not chunk:
                return
            self.shown += chunk
            found = TERMINAL_CODE.search(self.shown)
            if found and not typed_code:
                code = found.group(1).decode()
                os.write(self.master, ((self.answer or (lambda c: c))(code) + "\n").encode())
                typed_code = True
            if typed_code and b"Optional note" in self.shown:
                os.write(self.master, (self.note + "\n").encode())
                return


@contextlib.contextmanager
def _terminal_of_the_command(
    columns: int, terminal: bool, answer: Callable[[str], str] | None, note: str
) -> Iterator[Callable[[], str]]:
    """The ``plans`` command's screen (a console ``columns`` wide) and, if ``terminal``, its tty."""
    screen = io.StringIO()
    saved = plans_cli.console, plans_cli.err, plans_cli._open_terminal
    plans_cli.console = Console(file=screen, width=columns, force_terminal=True, highlight=False)
    plans_cli.err = Console(file=screen, width=columns, highlight=False)
    plans_cli._open_terminal = lambda: None
    master = slave = -1
    person: _Person | None = None
    handed: list[int] = []  # the command closes the terminal it was handed
    if terminal:
        master, slave = os.openpty()
        person = _Person(master, answer, note)
        person.start()

        def opened() -> plans_cli._Terminal:
            handed.append(slave)
            return plans_cli._Terminal(slave)

        plans_cli._open_terminal = opened
    try:
        yield lambda: screen.getvalue() + (person.shown.decode(errors="replace") if person else "")
    finally:
        plans_cli.console, plans_cli.err, plans_cli._open_terminal = saved
        if terminal and not handed:
            os.close(slave)
        if person is not None:
            person.join(timeout=5)  # its read ends once the terminal's other end is closed
        if terminal:
            os.close(master)


async def plans_in_process(
    data_dir: Path,
    *args: str,
    terminal: bool = True,
    answer: Callable[[str], str] | None = None,
    note: str = "checked the diff",
    columns: int = 200,
) -> tuple[int, str]:
    """``infra-mcp plans ARGS`` as the login user, run in this process on a pseudo-terminal of its own.

    The same parser and command functions as the subprocess (``plans_at_terminal``) without an
    interpreter's start-up per command: the command's terminal is a pty pair opened here (or none,
    with ``terminal=False``, like an agent's shell), and a thread plays the person at it. Whether the
    real command finds its *controlling* terminal is for the subprocess tests. Returns the exit status
    and everything the command showed.
    """
    parsed = cli_parser().parse_args(["plans", *args])
    settings = Settings(data_dir=data_dir, user=plans_cli.login_user(), log_level="WARNING")
    with _terminal_of_the_command(columns, terminal, answer, note) as shown:
        status = await plans_cli.plans_command(settings, parsed)
        return status, shown()

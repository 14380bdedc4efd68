"""``python -m tests.e2e.crashing_server``: the real ``infra-mcp serve``, SIGKILLed at one chosen write.

``INFRA_MCP_TEST_CRASH_AT`` names the point; ``INFRA_MCP_TEST_CRASH_MARK`` is a file where it
writes that point just before dying, so the test knows the kill happened there. The server kills its own children (the sandbox) and
then itself with SIGKILL at that exact place in the code: the same as a kill from outside at that
instant, but deterministic, with no sleeping or racing against the write.

Database writes (``<write>:before_commit`` / ``<write>:after_commit``), where ``<write>`` is
``update_project``, ``save_plan`` or ``approve`` (the plan row moving from pending to approved):
``before_commit`` dies inside the transaction, its statements run but not committed; ``after_commit``
dies right after the commit returned, before anything else (the answer) happens. The plan row and
its audit line are committed together, so both cases must leave both or neither.

A state checkpoint during execute_plan, ``checkpoint:committed``: dies with history/<serial>.json
written (the version is committed) but state.json not yet moved to it, the widest window of a state
write (each file itself is written to a temporary name and renamed, so never seen half-written).
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import aiosqlite

from infra_mcp.domain.plan import PlanStatus
from infra_mcp.stores.sqlite import SqliteProjectStore
from infra_mcp.stores.state_local import LocalBlobs

POINT = os.environ.get("INFRA_MCP_TEST_CRASH_AT", "")
_armed: ContextVar[str | None] = ContextVar("crash_armed", default=None)


def die() -> None:
    """Say where (for the test to check), SIGKILL the sandbox child, then this process: no cleanup runs."""
    Path(os.environ["INFRA_MCP_TEST_CRASH_MARK"]).write_text(POINT)
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == me:
                    os.kill(int(entry.name), signal.SIGKILL)
    os.kill(me, signal.SIGKILL)


def _arm(method: str, when: str, applies: Callable[..., bool] = lambda *_a, **_k: True) -> None:
    original = getattr(SqliteProjectStore, method)

    @functools.wraps(original)
    async def armed(store: SqliteProjectStore, *args: Any, **kwargs: Any) -> Any:
        token = _armed.set(when if applies(*args, **kwargs) else None)
        try:
            return await original(store, *args, **kwargs)
        finally:
            _armed.reset(token)

    setattr(SqliteProjectStore, method, armed)


def _install_commit_hook() -> None:
    real_commit = aiosqlite.Connection.commit

    async def commit(connection: aiosqlite.Connection) -> None:
        when = _armed.get()
        if when == "before_commit":
            die()
        await real_commit(connection)
        if when == "after_commit":
            die()

    aiosqlite.Connection.commit = commit  # type: ignore[method-assign]


def _approving(plan: Any, *, expected_status: PlanStatus, **_: Any) -> bool:
    return bool(plan.status is PlanStatus.APPROVED and expected_status is PlanStatus.PENDING)


def _install_checkpoint_hook() -> None:
    real_put = LocalBlobs.put

    def put(blobs: LocalBlobs, key: str, data: bytes, **kwargs: Any) -> str:
        if key.endswith("/state.json"):
            die()  # history/<serial>.json is already written: the version is committed
        return real_put(blobs, key, data, **kwargs)

    LocalBlobs.put = put  # type: ignore[method-assign]


def install(point: str) -> None:
    write, _, when = point.partition(":")
    if point == "checkpoint:committed":
        _install_checkpoint_hook()
        return
    _install_commit_hook()
    if write == "approve":
        _arm("update_plan", when, _approving)
    elif write in {"update_project", "save_plan"}:
        _arm(write, when)
    else:
        raise SystemExit(f"unknown crash point {point!r}")


if __name__ == "__main__":
    from infra_mcp.cli import main

    install(POINT)
    sys.exit(main(["serve"]))

"""Who is told when pending plans change: the project's members' sessions only, and a stalled one holds up nobody."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from infra_mcp.domain.project import Member, Project, Role
from infra_mcp.server import pending as pending_module
from infra_mcp.server.pending import PendingWatch


class Session:
    """A stand-in for a client connection: counts the list-changed notifications it gets."""

    def __init__(self, *, stalls: bool = False, broken: bool = False) -> None:
        self.stalls = stalls
        self.broken = broken
        self.told = 0

    async def send_resource_list_changed(self) -> None:
        if self.broken:
            raise anyio.ClosedResourceError
        if self.stalls:
            await anyio.sleep_forever()
        self.told += 1


class Context:
    def __init__(self, session: Session) -> None:
        self.session = type("Proxy", (), {"_connection": session})()
        self.protocol_version = "2025-11-25"


def project(*members: str) -> Project:
    return Project(id="web", name="web", owner=members[0], members=[Member(user=u, role=Role.OWNER) for u in members])


async def watched(users: dict[str, Session]) -> PendingWatch:
    current: dict[str, str | None] = {"user": None}
    watch = PendingWatch(lambda: current["user"])

    async def call_next(_: Any) -> None:
        return None

    for user, session in users.items():
        current["user"] = user
        await watch.middleware(Context(session), call_next)  # type: ignore[arg-type]
    return watch


async def test_only_the_projects_members_are_told() -> None:
    alice, bob, mallory = Session(), Session(), Session()
    watch = await watched({"alice": alice, "bob": bob, "mallory": mallory})
    await watch.changed(project("alice", "bob"))
    assert (alice.told, bob.told, mallory.told) == (1, 1, 0)


async def test_a_stalled_or_closed_session_holds_up_nobody(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pending_module, "NOTIFY_SECONDS", 0.05)
    stalled, closed, fine = Session(stalls=True), Session(broken=True), Session()
    watch = await watched({"carol": stalled, "dave": closed, "erin": fine})
    with anyio.fail_after(5):  # a hang guard, not a timing measurement
        await watch.changed(project("carol", "dave", "erin"))
    assert fine.told == 1
    assert watch.watched == 2  # the closed one is forgotten


async def test_modern_protocol_requests_are_not_watched() -> None:
    watch = PendingWatch(lambda: "alice")
    context = Context(Session())
    context.protocol_version = "2026-07-28"

    async def call_next(_: Any) -> None:
        return None

    await watch.middleware(context, call_next)  # type: ignore[arg-type]
    assert watch.watched == 0

"""History reads like history: one entry per executed plan, its checkpoints grouped under it."""

from __future__ import annotations

from datetime import UTC, datetime

from infra_mcp.domain.state import HistoryEntry
from infra_mcp.server.models import grouped_history, version_view

T = datetime(2026, 1, 1, tzinfo=UTC)


def entry(serial: int, plan: str | None, *, checkpoint: bool = False) -> HistoryEntry:
    return HistoryEntry(
        serial=serial,
        timestamp=T,
        last_modified_by="alice",
        change_description="Checkpoint of plan x" if checkpoint else "done",
        change_plan_id=plan,
        checksum="",
        resource_count=serial,
        checkpoint=checkpoint,
    )


def test_a_plans_checkpoints_are_grouped_under_its_final_version() -> None:
    history = [entry(4, "p2"), entry(3, "p2", checkpoint=True), entry(2, "p1"), entry(1, "p1", checkpoint=True)]
    views = [version_view(v, c) for v, c in grouped_history(history)]
    assert [(v.serial, v.checkpoints, v.checkpoint) for v in views] == [(4, [3], False), (2, [1], False)]


def test_a_checkpoint_whose_plan_never_finished_stays_visible_and_marked() -> None:
    history = [entry(3, "p2", checkpoint=True), entry(2, None), entry(1, "p1")]
    views = [version_view(v, c) for v, c in grouped_history(history)]
    assert [(v.serial, v.checkpoint, v.checkpoints) for v in views] == [(3, True, []), (2, False, []), (1, False, [])]

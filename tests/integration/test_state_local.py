"""The local-folder state store against the StateStore contract, plus what only a folder can do wrong."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from infra_mcp.domain.state import Journal, StateFile, StateOwner
from infra_mcp.ports import StateStore
from infra_mcp.stores import versioned_state
from infra_mcp.stores.state_local import LocalStateStore
from infra_mcp.stores.state_scope import IncarnationScope
from tests.integration.state_contract import PROJECT, FakeClock, StateStoreContract, outcome, version


class RawFolder:
    """The folder behind a LocalStateStore, read and written directly."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def get(self, key: str) -> bytes | None:
        path = self.root / key
        return path.read_bytes() if path.is_file() else None

    def put(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def keys(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())


class TestLocalStateStore(StateStoreContract):
    @pytest.fixture
    def make_store(self, tmp_path: Path, clock: FakeClock) -> Callable[[], StateStore]:
        return lambda: LocalStateStore(tmp_path / "state", clock=clock)

    @pytest.fixture
    def raw(self, tmp_path: Path) -> RawFolder:
        return RawFolder(tmp_path / "state")


async def test_the_folder_is_created_on_first_write(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path / "not" / "yet" / "there")
    assert await store.read(PROJECT) is None
    await store.write(version(1, "l"))
    assert (tmp_path / "not" / "yet" / "there" / PROJECT / "state.json").is_file()


async def test_a_root_that_is_not_a_folder_is_state_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    store = LocalStateStore(blocker)

    refused = await outcome(store.write(version(1, "l")))

    assert refused.code == "STATE_004"
    assert refused.details["location"] == str(blocker)


async def test_a_document_is_stored_as_sorted_indented_json_that_reads_back_the_same(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path / "state")
    state = version(1, "l")
    state.resources[0].properties = {"z": [1, 0.5, None, {"b": "é\n", "a": []}], "A": {}, "big": 10**30}

    written = await store.write(state)

    data = (tmp_path / "state" / PROJECT / "state.json").read_bytes()
    document = json.loads(data)
    assert data == (json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True) + "\n").encode()
    assert written.metadata.checksum == state.compute_checksum()
    assert await store.read(PROJECT) == written


async def test_a_write_sees_a_version_another_process_wrote_since_its_own(tmp_path: Path) -> None:
    ours, theirs = LocalStateStore(tmp_path / "state"), LocalStateStore(tmp_path / "state")
    first = await ours.write(version(1, "l"))
    await theirs.write(version(2, first.lineage, by="them"))

    refused = await outcome(ours.write(version(2, first.lineage)))
    assert refused.code == "STATE_002"
    assert (await ours.write(version(3, first.lineage))).serial == 3


async def test_a_write_after_our_own_does_not_parse_the_current_version_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStateStore(tmp_path / "state")
    first = await store.write(version(1, "l"))
    parsed: list[int | None] = []
    original = versioned_state.parse_state

    def counting(data: bytes, *, project_id: str, serial: int | None = None) -> StateFile:
        parsed.append(serial)
        return original(data, project_id=project_id, serial=serial)

    monkeypatch.setattr(versioned_state, "parse_state", counting)
    await store.write(version(2, first.lineage))
    assert parsed == []
    # A writer that died between history and state.json is still rolled forward over.
    orphan = version(3, first.lineage, by="a writer that died")
    orphan.metadata.checksum = orphan.compute_checksum()
    (tmp_path / "state" / PROJECT / "history" / "3.json").write_bytes(versioned_state.encode(orphan.to_document()))
    refused = await outcome(store.write(version(3, first.lineage)))
    assert refused.code == "STATE_002"


async def test_folders_the_store_creates_are_0700_and_state_files_0600(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path / "state" / "team")
    lock = await store.acquire_lock(PROJECT, owner="alice", operation="op", lease_seconds=30)
    await store.write(version(1, "l"))
    await store.write_journal(Journal(project_id=PROJECT))

    folders = [tmp_path / "state", tmp_path / "state" / "team", tmp_path / "state" / "team" / PROJECT]
    folders.append(folders[-1] / "history")
    assert {str(f): oct(f.stat().st_mode & 0o777) for f in folders} == {str(f): "0o700" for f in folders}
    files = [p for p in (tmp_path / "state").rglob("*") if p.is_file()]
    assert {p.name for p in files} == {"1.json", "state.json", "state.lock", "journal.json"}
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {"0o600"}
    await store.release_lock(PROJECT, lock)


async def test_a_project_folder_symlinked_out_of_the_location_is_neither_read_written_nor_deleted(
    tmp_path: Path,
) -> None:
    elsewhere = tmp_path / "precious"
    (elsewhere / "history").mkdir(parents=True)
    (elsewhere / "history" / "1.json").write_text("keep me")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / PROJECT).symlink_to(elsewhere)
    store = LocalStateStore(tmp_path / "state")

    assert (await outcome(store.read(PROJECT))).code == "STATE_004"
    assert (await outcome(store.write(version(1, "l")))).code == "STATE_004"
    owner = StateOwner(project_id=PROJECT, incarnation="i", adopts_unmarked=True)
    assert (await outcome(store.delete_project_data(PROJECT, owner=owner))).code == "STATE_004"
    assert (elsewhere / "history" / "1.json").read_text() == "keep me"
    assert sorted(p.name for p in elsewhere.rglob("*")) == ["1.json", "history"]


async def test_deleting_a_project_removes_its_emptied_folders_but_not_the_location(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path / "state")
    owner = StateOwner(project_id=PROJECT, incarnation="i")
    await IncarnationScope(store, owner).write(version(1, "l"))

    await store.delete_project_data(PROJECT, owner=owner)

    assert [p.name for p in (tmp_path / "state").iterdir()] == []

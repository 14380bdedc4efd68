"""The local-folder state store against the StateStore contract, plus what only a folder can do wrong."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from infra_mcp.ports import StateStore
from infra_mcp.stores.state_local import LocalStateStore
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

"""The StateStore contract (DESIGN §3), asserted the same way for every backend.

A backend's test module subclasses :class:`StateStoreContract` (and, for S3,
:class:`S3FailureContract`) and provides two fixtures:

- ``make_store``: a zero-argument factory of stores on one shared location, built with the
  ``clock`` fixture. Two stores from it behave like two processes: they share nothing in memory.
- ``raw``: a :class:`RawStorage` that reads and writes keys behind the store's back, to check the
  key layout and to damage files the way a crash, a bad disk or a human would.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import anyio
import anyio.from_thread
import pytest
from structlog.testing import capture_logs

from infra_mcp.domain.state import Journal, JournalEntry, LockInfo, StateFile, StateOwner, StateResource
from infra_mcp.errors import InfraError
from infra_mcp.ports import StateStore
from infra_mcp.stores.state_scope import IncarnationScope
from infra_mcp.stores.versioned_state import Blob, BlobBackend, VersionedStateStore, encode

PROJECT = "web-app"
OURS = StateOwner(project_id=PROJECT, incarnation="11111111-1111-4111-8111-111111111111")
THEIRS = StateOwner(project_id=PROJECT, incarnation="22222222-2222-4222-8222-222222222222")
LEGACY = StateOwner(project_id=PROJECT, incarnation="33333333-3333-4333-8333-333333333333", adopts_unmarked=True)
BAD_PROJECT_IDS = ["../x", "A", "a/b", ""]


# --------------------------------------------------------------------------- helpers


class FakeClock:
    """A clock the test moves by hand, so lease expiry needs no sleeping."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 15, 10, 30, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class RawStorage(Protocol):
    """Direct access to the keys under a store's root, bypassing the store."""

    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, data: bytes) -> None: ...

    def keys(self) -> list[str]:
        """Every key under the root, sorted."""
        ...


def vpc(cidr: str = "10.0.0.0/16") -> StateResource:
    return StateResource(
        id="vpc-0abc", name="web-vpc", type="AWS::EC2::VPC", properties={"CidrBlock": cidr}, tags={"Env": "dev"}
    )


def version(
    serial: int,
    lineage: str,
    *,
    project_id: str = PROJECT,
    by: str = "alice",
    resources: list[StateResource] | None = None,
) -> StateFile:
    """A state version with an empty checksum (the store fills it in)."""
    state = StateFile(project_id=project_id, serial=serial, lineage=lineage, resources=resources or [vpc()])
    state.metadata.last_modified_by = by
    state.metadata.change_description = f"version {serial} by {by}"
    return state


async def write_versions(store: StateStore, count: int, *, project_id: str = PROJECT) -> list[StateFile]:
    lineage = str(uuid.uuid4())
    return [
        await store.write(version(n, lineage, project_id=project_id, resources=[vpc(f"10.{n}.0.0/16")]))
        for n in range(1, count + 1)
    ]


async def outcome(call: Awaitable[Any]) -> Any:
    """The result of ``call``, or the InfraError it raised."""
    try:
        return await call
    except InfraError as exc:
        return exc


async def all_at_once(*calls: Callable[[], Awaitable[Any]]) -> list[Any]:
    """Run ``calls`` concurrently (each store call runs in its own worker thread); results in order."""
    results: list[Any] = [None] * len(calls)

    async def run(index: int, call: Callable[[], Awaitable[Any]]) -> None:
        results[index] = await outcome(call())

    async with anyio.create_task_group() as group:
        for index, call in enumerate(calls):
            group.start_soon(run, index, call)
    return results


def snapshot(raw: RawStorage) -> dict[str, bytes | None]:
    """Every key under the root with its bytes."""
    stored = raw.keys()
    return {key: raw.get(key) for key in stored}


def stored_by(data: bytes | None) -> str:
    assert data is not None
    return str(json.loads(data)["metadata"]["lastModifiedBy"])


class RivalFirst:
    """A backend proxy that lets a rival act just before our first ``put`` to a key ending in ``suffix``.

    It makes a race deterministic: both sides have read the same thing, the rival writes first.
    """

    def __init__(self, inner: BlobBackend, suffix: str, rival: Callable[[], Awaitable[Any]]) -> None:
        self._inner = inner
        self._suffix = suffix
        self._rival = rival
        self.rival_result: Any = None
        self._fired = False

    def put(self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False) -> str:
        if key.endswith(self._suffix) and not self._fired:
            self._fired = True
            self.rival_result = anyio.from_thread.run(self._rival)
        return self._inner.put(key, data, if_match=if_match, if_none_match=if_none_match)

    def get(self, key: str) -> Blob | None:
        return self._inner.get(key)

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        self._inner.delete(key, if_match=if_match)

    def list(self, prefix: str) -> list[str]:
        return self._inner.list(prefix)

    def prune(self, prefix: str) -> None:
        self._inner.prune(prefix)


def rigged(store: StateStore, suffix: str, rival: Callable[[], Awaitable[Any]]) -> RivalFirst:
    assert isinstance(store, VersionedStateStore)
    proxy = RivalFirst(store.backend, suffix, rival)
    store.backend = proxy
    return proxy


def make_moto_conditional_writes_atomic(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto's conditional PutObject/DeleteObject atomic, as S3's are.

    moto checks If-Match / If-None-Match and then stores the object in two separate steps with no
    lock, so two threads can both pass the check. Real S3 evaluates the condition atomically; we
    serialise moto's handlers so the concurrency tests exercise our logic, not that moto gap.
    """
    from moto.s3.responses import S3Response

    guard = threading.Lock()
    for name in ("put_object", "delete_object"):
        original = getattr(S3Response, name)

        def serialised(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with guard:
                return _original(self, *args, **kwargs)

        monkeypatch.setattr(S3Response, name, serialised)


def make_in_process_moto_requests_atomic(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every S3 request to in-process moto (``mock_aws``) atomic, as each request to S3 is.

    In-process, moto answers inside the caller's thread, and more than its conditional writes is
    unguarded (its bucket's key store is read while another thread writes it): the five-taker lease
    race failed about once in seven runs on that. Requests still interleave freely *between* one
    another (read the lease, then write it conditionally), which is the race the tests are about.
    """
    from moto.core.botocore_stubber import BotocoreStubber

    guard = threading.RLock()
    original = BotocoreStubber.__call__

    def serialised(self: Any, *args: Any, **kwargs: Any) -> Any:
        with guard:
            return original(self, *args, **kwargs)

    monkeypatch.setattr(BotocoreStubber, "__call__", serialised)


# --------------------------------------------------------------------------- the contract


class StateStoreContract:
    """Behaviour every StateStore backend must show."""

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def store(self, make_store: Callable[[], StateStore]) -> StateStore:
        return make_store()

    # ----------------------------------------------------------------- read and write

    async def test_a_project_never_written_reads_as_none(self, store: StateStore) -> None:
        assert await store.read(PROJECT) is None
        assert await store.history(PROJECT) == []

    async def test_the_first_write_is_serial_one_and_reads_back_identical(self, store: StateStore) -> None:
        written = await store.write(version(1, "lineage-1"))

        assert written.serial == 1
        assert written.metadata.checksum == written.compute_checksum()
        again = await store.read(PROJECT)
        assert again is not None
        assert again.to_document() == written.to_document()

    async def test_writes_use_the_shared_key_layout_and_leave_no_temporary_files(
        self, store: StateStore, raw: RawStorage
    ) -> None:
        await write_versions(store, 2)
        await store.acquire_lock(PROJECT, owner="alice", operation="execute_plan", lease_seconds=30)
        await store.write_journal(Journal(project_id=PROJECT))

        assert raw.keys() == [
            f"{PROJECT}/history/1.json",
            f"{PROJECT}/history/2.json",
            f"{PROJECT}/journal.json",
            f"{PROJECT}/state.json",
            f"{PROJECT}/state.lock",
        ]

    async def test_a_write_must_be_exactly_one_serial_ahead(self, store: StateStore) -> None:
        skipped = await outcome(store.write(version(2, "l")))
        assert skipped.code == "STATE_002"
        assert skipped.details["current_serial"] == 0

        await store.write(version(1, "l"))
        for serial in (1, 3):
            refused = await outcome(store.write(version(serial, "l")))
            assert refused.code == "STATE_002"
            assert refused.details["current_serial"] == 1

    async def test_a_write_from_another_lineage_is_a_conflict(self, store: StateStore) -> None:
        await store.write(version(1, "lineage-a"))

        refused = await outcome(store.write(version(2, "lineage-b")))

        assert refused.code == "STATE_002"
        current = await store.read(PROJECT)
        assert current is not None
        assert current.serial == 1

    async def test_a_wrong_checksum_is_refused_and_nothing_is_written(self, store: StateStore, raw: RawStorage) -> None:
        state = version(1, "l")
        state.metadata.checksum = "sha256:" + "0" * 64

        refused = await outcome(store.write(state))

        assert refused.code == "VALIDATION_001"
        assert raw.keys() == []

    async def test_the_caller_s_state_object_is_not_mutated(self, store: StateStore) -> None:
        state = version(1, "l")
        written = await store.write(state)
        assert state.metadata.checksum == ""
        assert written.metadata.checksum.startswith("sha256:")

    # ----------------------------------------------------------------- races between writers

    async def test_two_writers_from_the_same_serial_exactly_one_wins(
        self, make_store: Callable[[], StateStore], raw: RawStorage
    ) -> None:
        alice, bob = make_store(), make_store()
        base = await alice.write(version(1, "l"))
        for serial in range(2, 6):  # a few rounds, so the threads really do interleave
            results = await all_at_once(
                lambda s=serial: alice.write(version(s, base.lineage, by="alice")),
                lambda s=serial: bob.write(version(s, base.lineage, by="bob")),
            )
            winners = [r for r in results if isinstance(r, StateFile)]
            losers = [r for r in results if isinstance(r, InfraError)]
            assert len(winners) == 1
            assert [e.code for e in losers] == ["STATE_002"]
            winner = winners[0].metadata.last_modified_by
            assert stored_by(raw.get(f"{PROJECT}/history/{serial}.json")) == winner
            assert stored_by(raw.get(f"{PROJECT}/state.json")) == winner
        assert [h.serial for h in await alice.history(PROJECT)] == [5, 4, 3, 2, 1]

    async def test_a_writer_that_loses_the_history_race_overwrites_nothing(
        self, make_store: Callable[[], StateStore], raw: RawStorage
    ) -> None:
        alice, bob = make_store(), make_store()
        base = await alice.write(version(1, "l"))
        # Bob commits serial 2 after Alice checked the serial but before she creates history/2.json.
        rigged(alice, "/history/2.json", lambda: bob.write(version(2, base.lineage, by="bob")))

        refused = await outcome(alice.write(version(2, base.lineage, by="alice")))

        assert refused.code == "STATE_002"
        assert stored_by(raw.get(f"{PROJECT}/history/2.json")) == "bob"
        assert stored_by(raw.get(f"{PROJECT}/state.json")) == "bob"
        assert [h.serial for h in await bob.history(PROJECT)] == [2, 1]

    async def test_many_writers_from_the_same_serial_still_one_wins(
        self, make_store: Callable[[], StateStore], raw: RawStorage
    ) -> None:
        stores = [make_store() for _ in range(6)]
        base = await stores[0].write(version(1, "l"))

        results = await all_at_once(
            *[lambda i=i, s=s: s.write(version(2, base.lineage, by=f"w{i}")) for i, s in enumerate(stores)]
        )

        winners = [r for r in results if isinstance(r, StateFile)]
        assert len(winners) == 1
        assert sorted(r.code for r in results if isinstance(r, InfraError)) == ["STATE_002"] * 5
        assert stored_by(raw.get(f"{PROJECT}/history/2.json")) == winners[0].metadata.last_modified_by

    # ----------------------------------------------------------------- history

    async def test_history_lists_every_version_newest_first_in_numeric_order(self, store: StateStore) -> None:
        written = await write_versions(store, 11)

        entries = await store.history(PROJECT)

        assert [e.serial for e in entries] == list(range(11, 0, -1))  # 11 before 2: numeric, not lexical
        assert all(e.valid for e in entries)
        assert entries[0].checksum == written[-1].metadata.checksum
        assert entries[0].last_modified_by == "alice"
        assert entries[0].resource_count == 1

    async def test_read_version_returns_each_version_as_written(self, store: StateStore) -> None:
        written = await write_versions(store, 3)
        for state in written:
            assert (await store.read_version(PROJECT, state.serial)).to_document() == state.to_document()

    @pytest.mark.parametrize("serial", [0, 4, -1])
    async def test_read_version_of_a_missing_version_is_not_found(self, store: StateStore, serial: int) -> None:
        await write_versions(store, 3)
        assert (await outcome(store.read_version(PROJECT, serial))).code == "RESOURCE_001"

    async def test_a_damaged_history_file_is_listed_as_invalid_and_refused_when_read(
        self, store: StateStore, raw: RawStorage
    ) -> None:
        await write_versions(store, 3)
        raw.put(f"{PROJECT}/history/2.json", b'{"version": "1.0.0", "projectId": "web-')

        entries = await store.history(PROJECT)
        damaged = await outcome(store.read_version(PROJECT, 2))

        assert [(e.serial, e.valid) for e in entries] == [(3, True), (2, False), (1, True)]
        assert damaged.code == "STATE_001"
        assert damaged.details["newest_valid_version"] == 3
        current = await store.read(PROJECT)
        assert current is not None
        assert current.serial == 3

    # ----------------------------------------------------------------- corruption and recovery

    @pytest.mark.parametrize("damage", ["truncated", "not json", "hand-edited resource", "not a state file"])
    async def test_a_corrupted_state_file_names_the_newest_valid_version(
        self, store: StateStore, raw: RawStorage, damage: str
    ) -> None:
        await write_versions(store, 2)
        raw.put(f"{PROJECT}/state.json", _damaged(raw.get(f"{PROJECT}/state.json"), damage))

        refused = await outcome(store.read(PROJECT))

        assert refused.code == "STATE_001"
        assert refused.details["newest_valid_version"] == 2

    async def test_corruption_skips_damaged_history_when_naming_the_version(
        self, store: StateStore, raw: RawStorage
    ) -> None:
        await write_versions(store, 2)
        raw.put(f"{PROJECT}/state.json", b"{")
        raw.put(f"{PROJECT}/history/2.json", b"")

        refused = await outcome(store.read(PROJECT))

        assert refused.code == "STATE_001"
        assert refused.details["newest_valid_version"] == 1

    async def test_corruption_with_no_valid_history_names_no_version(self, store: StateStore, raw: RawStorage) -> None:
        await write_versions(store, 1)
        raw.put(f"{PROJECT}/state.json", b"not json")
        raw.put(f"{PROJECT}/history/1.json", b"not json either")

        refused = await outcome(store.read(PROJECT))

        assert refused.code == "STATE_001"
        assert refused.details["newest_valid_version"] is None

    async def test_a_corrupted_state_is_recovered_by_writing_a_version_restored_from_history(
        self, store: StateStore, raw: RawStorage
    ) -> None:
        written = await write_versions(store, 2)
        raw.put(f"{PROJECT}/state.json", b'{"truncated')
        source = await store.read_version(PROJECT, 2)

        restored = await store.write(
            source.next_version(source.resources, user="alice", description="Restored state version 2")
        )

        assert restored.serial == 3
        current = await store.read(PROJECT)
        assert current is not None
        assert current.serial == 3
        assert current.lineage == written[0].lineage
        assert current.resources == written[1].resources

    async def test_read_rolls_forward_when_a_writer_died_after_writing_history(
        self, store: StateStore, raw: RawStorage
    ) -> None:
        (first,) = await write_versions(store, 1)
        orphan = first.next_version([vpc("10.9.0.0/16")], user="bob", description="died before state.json")
        raw.put(f"{PROJECT}/history/2.json", encode(orphan.to_document()))

        current = await store.read(PROJECT)

        assert current is not None
        assert current.serial == 2
        assert stored_by(raw.get(f"{PROJECT}/state.json")) == "bob"  # repaired on the way
        assert (await store.write(current.next_version([], user="alice", description="next"))).serial == 3

    async def test_read_rolls_forward_when_the_first_writer_died_before_state_json(
        self, store: StateStore, raw: RawStorage
    ) -> None:
        orphan = version(1, "l", by="bob")
        orphan.metadata.checksum = orphan.compute_checksum()
        raw.put(f"{PROJECT}/history/1.json", encode(orphan.to_document()))

        current = await store.read(PROJECT)

        assert current is not None
        assert current.serial == 1
        assert (await outcome(store.write(version(1, "l")))).code == "STATE_002"

    async def test_a_damaged_orphan_history_version_is_reported_as_corruption(
        self, store: StateStore, raw: RawStorage
    ) -> None:
        await write_versions(store, 1)
        raw.put(f"{PROJECT}/history/2.json", b"\xff\xfe garbage")

        refused = await outcome(store.read(PROJECT))

        assert refused.code == "STATE_001"
        assert refused.details["newest_valid_version"] == 1

    async def test_a_state_file_copied_from_another_project_is_corrupt(
        self, store: StateStore, raw: RawStorage
    ) -> None:
        await write_versions(store, 1, project_id="other")
        await write_versions(store, 1)
        raw.put(f"{PROJECT}/state.json", raw.get("other/state.json") or b"")

        assert (await outcome(store.read(PROJECT))).code == "STATE_001"

    # ----------------------------------------------------------------- lease lock

    async def test_a_held_lock_refuses_a_second_taker_naming_holder_and_operation(
        self, make_store: Callable[[], StateStore], clock: FakeClock
    ) -> None:
        alice, bob = make_store(), make_store()
        held = await alice.acquire_lock(PROJECT, owner="alice", operation="execute_plan", lease_seconds=30)

        refused = await outcome(bob.acquire_lock(PROJECT, owner="bob", operation="restore_state", lease_seconds=30))

        assert held.owner == "alice"
        assert held.expires_at == clock.now + timedelta(seconds=30)
        assert held.etag is not None
        assert refused.code == "STATE_003"
        assert refused.details["owner"] == "alice"
        assert refused.details["operation"] == "execute_plan"
        assert refused.details["expires_at"].startswith("2026-01-15T10:30:30")

    async def test_a_released_lock_can_be_taken_again(self, store: StateStore) -> None:
        held = await store.acquire_lock(PROJECT, owner="alice", operation="op", lease_seconds=30)
        await store.release_lock(PROJECT, held)

        again = await store.acquire_lock(PROJECT, owner="bob", operation="op", lease_seconds=30)

        assert again.owner == "bob"

    async def test_renewing_extends_the_lease_from_now(
        self, make_store: Callable[[], StateStore], clock: FakeClock
    ) -> None:
        alice, bob = make_store(), make_store()
        held = await alice.acquire_lock(PROJECT, owner="alice", operation="op", lease_seconds=10)
        clock.advance(8)

        renewed = await alice.renew_lock(PROJECT, held, lease_seconds=10)
        clock.advance(8)  # past the first lease, inside the renewed one

        assert renewed.expires_at == held.expires_at + timedelta(seconds=8)
        assert (await outcome(bob.acquire_lock(PROJECT, owner="bob", operation="op", lease_seconds=10))).code == (
            "STATE_003"
        )
        await alice.release_lock(PROJECT, renewed)
        assert (await bob.acquire_lock(PROJECT, owner="bob", operation="op", lease_seconds=10)).owner == "bob"

    async def test_an_expired_lease_is_taken_over_and_the_takeover_is_logged(
        self, make_store: Callable[[], StateStore], clock: FakeClock
    ) -> None:
        alice, bob = make_store(), make_store()
        await alice.acquire_lock(PROJECT, owner="alice", operation="execute_plan", lease_seconds=0.2)
        clock.advance(0.3)

        with capture_logs() as logs:
            taken = await bob.acquire_lock(PROJECT, owner="bob", operation="restore_state", lease_seconds=30)

        assert taken.owner == "bob"
        takeovers = [e for e in logs if e["event"] == "state_lock_takeover"]
        assert len(takeovers) == 1
        assert takeovers[0]["previous_owner"] == "alice"
        assert takeovers[0]["project_id"] == PROJECT

    async def test_the_previous_holder_can_neither_renew_nor_release_a_lock_taken_over(
        self, make_store: Callable[[], StateStore], clock: FakeClock, raw: RawStorage
    ) -> None:
        alice, bob = make_store(), make_store()
        stale = await alice.acquire_lock(PROJECT, owner="alice", operation="op", lease_seconds=1)
        clock.advance(2)
        await bob.acquire_lock(PROJECT, owner="bob", operation="op", lease_seconds=30)

        refused = await outcome(alice.renew_lock(PROJECT, stale, lease_seconds=30))
        await alice.release_lock(PROJECT, stale)

        assert refused.code == "STATE_003"
        assert refused.details["owner"] == "bob"
        assert json.loads(raw.get(f"{PROJECT}/state.lock") or b"{}")["owner"] == "bob"

    async def test_an_expired_lease_not_taken_over_can_still_be_renewed_by_its_holder(
        self, store: StateStore, clock: FakeClock
    ) -> None:
        held = await store.acquire_lock(PROJECT, owner="alice", operation="op", lease_seconds=1)
        clock.advance(5)

        renewed = await store.renew_lock(PROJECT, held, lease_seconds=1)

        assert renewed.expires_at == clock.now + timedelta(seconds=1)

    async def test_a_lock_remembered_without_its_etag_can_still_be_renewed_and_released(
        self, store: StateStore, raw: RawStorage
    ) -> None:
        held = await store.acquire_lock(PROJECT, owner="alice", operation="op", lease_seconds=30)
        remembered = LockInfo.model_validate(held.model_dump())  # e.g. read back from a plan record
        assert remembered.etag is None

        renewed = await store.renew_lock(PROJECT, remembered, lease_seconds=30)
        await store.release_lock(PROJECT, renewed.model_copy(update={"etag": None}))

        assert raw.get(f"{PROJECT}/state.lock") is None

    async def test_a_copy_of_our_lock_from_before_a_renewal_still_releases_it(
        self, store: StateStore, raw: RawStorage
    ) -> None:
        held = await store.acquire_lock(PROJECT, owner="alice", operation="op", lease_seconds=30)
        await store.renew_lock(PROJECT, held, lease_seconds=30)  # the lock's etag moved on

        await store.release_lock(PROJECT, held)

        assert raw.get(f"{PROJECT}/state.lock") is None

    async def test_releasing_a_lock_already_gone_is_not_an_error(self, store: StateStore) -> None:
        held = await store.acquire_lock(PROJECT, owner="alice", operation="op", lease_seconds=30)
        await store.release_lock(PROJECT, held)
        await store.release_lock(PROJECT, held)
        assert (await store.acquire_lock(PROJECT, owner="bob", operation="op", lease_seconds=30)).owner == "bob"

    async def test_two_takers_of_an_expired_lease_exactly_one_wins(
        self, make_store: Callable[[], StateStore], clock: FakeClock
    ) -> None:
        stores = [make_store() for _ in range(5)]
        await stores[0].acquire_lock(PROJECT, owner="gone", operation="op", lease_seconds=1)
        clock.advance(2)

        results = await all_at_once(
            *[
                lambda i=i, s=s: s.acquire_lock(PROJECT, owner=f"taker-{i}", operation="op", lease_seconds=30)
                for i, s in enumerate(stores)
            ]
        )

        assert len([r for r in results if isinstance(r, LockInfo)]) == 1
        assert sorted(r.code for r in results if isinstance(r, InfraError)) == ["STATE_003"] * 4

    async def test_of_two_takers_who_both_saw_the_expired_lease_the_second_is_refused(
        self, make_store: Callable[[], StateStore], clock: FakeClock, raw: RawStorage
    ) -> None:
        alice, bob, carol = make_store(), make_store(), make_store()
        await alice.acquire_lock(PROJECT, owner="alice", operation="op", lease_seconds=1)
        clock.advance(2)
        # Carol takes the expired lease after Bob read it but before Bob replaces it.
        proxy = rigged(
            bob, "/state.lock", lambda: carol.acquire_lock(PROJECT, owner="carol", operation="op", lease_seconds=30)
        )

        refused = await outcome(bob.acquire_lock(PROJECT, owner="bob", operation="op", lease_seconds=30))

        assert isinstance(proxy.rival_result, LockInfo)
        assert refused.code == "STATE_003"
        assert refused.details["owner"] == "carol"
        assert json.loads(raw.get(f"{PROJECT}/state.lock") or b"{}")["owner"] == "carol"

    async def test_a_lease_must_be_positive(self, store: StateStore, raw: RawStorage) -> None:
        refused = await outcome(store.acquire_lock(PROJECT, owner="a", operation="op", lease_seconds=0))
        assert refused.code == "VALIDATION_001"
        assert raw.keys() == []

    # ----------------------------------------------------------------- journal and deletion

    async def test_the_journal_is_empty_until_written_and_reads_back(self, store: StateStore) -> None:
        assert await store.read_journal(PROJECT) == Journal(project_id=PROJECT)
        journal = Journal(
            project_id=PROJECT,
            entries=[
                JournalEntry(
                    plan_id="plan-1",
                    name="web-vpc",
                    type="AWS::EC2::VPC",
                    region="us-east-1",
                    operation="CREATE",
                    request_token="tok-1",
                    client_token="client-1",
                )
            ],
        )

        await store.write_journal(journal)

        assert await store.read_journal(PROJECT) == journal

    async def test_an_unreadable_journal_is_reported_as_corrupted(self, store: StateStore, raw: RawStorage) -> None:
        raw.put(f"{PROJECT}/journal.json", b"[1, 2")
        assert (await outcome(store.read_journal(PROJECT))).code == "STATE_001"

    async def test_deleting_project_data_removes_every_key_of_that_project_only(
        self, store: StateStore, raw: RawStorage
    ) -> None:
        await write_versions(store, 3)
        lock = await store.acquire_lock(PROJECT, owner="alice", operation="op", lease_seconds=30)
        await store.write_journal(Journal(project_id=PROJECT))
        await write_versions(store, 1, project_id="web-app-2")  # shares a name prefix: must survive

        deletion = await store.delete_project_data(PROJECT, owner=LEGACY, lock=lock)

        assert raw.keys() == ["web-app-2/history/1.json", "web-app-2/state.json"]
        assert deletion.left == {}
        assert sorted(deletion.deleted) == sorted(
            f"{PROJECT}/{name}"
            for name in (
                "history/1.json",
                "history/2.json",
                "history/3.json",
                "state.json",
                "journal.json",
                "state.lock",
            )
        )
        assert await store.read(PROJECT) is None
        assert (await write_versions(store, 1))[0].serial == 1

    async def test_deleting_project_data_leaves_files_it_did_not_write_and_reports_them(
        self, store: StateStore, raw: RawStorage
    ) -> None:
        await write_versions(IncarnationScope(store, OURS), 2)
        raw.put(f"{PROJECT}/audit-export.csv", b"someone else's file")
        raw.put(f"{PROJECT}/history/notes.txt", b"not a state version")
        raw.put(f"{PROJECT}/state.lock", b"not our lock")

        deletion = await store.delete_project_data(PROJECT, owner=OURS)

        assert raw.keys() == [f"{PROJECT}/audit-export.csv", f"{PROJECT}/history/notes.txt", f"{PROJECT}/state.lock"]
        assert set(deletion.left) == {f"{PROJECT}/history/notes.txt", f"{PROJECT}/state.lock"}
        assert len(deletion.deleted) == 3

    async def test_deleting_project_data_leaves_every_version_another_incarnation_wrote(
        self, store: StateStore, raw: RawStorage
    ) -> None:
        await write_versions(IncarnationScope(store, THEIRS), 2)
        before = snapshot(raw)

        deletion = await store.delete_project_data(PROJECT, owner=OURS)

        assert snapshot(raw) == before
        assert deletion.deleted == []
        assert set(deletion.left) == set(before)

    # ----------------------------------------------------------------- incarnations

    async def test_every_version_and_journal_written_through_a_scope_carries_its_incarnation(
        self, store: StateStore, raw: RawStorage
    ) -> None:
        scope = IncarnationScope(store, OURS)
        await write_versions(scope, 2)
        await scope.write_journal(Journal(project_id=PROJECT))

        for key in (f"{PROJECT}/state.json", f"{PROJECT}/history/1.json", f"{PROJECT}/journal.json"):
            document = json.loads(raw.get(key) or b"{}")
            stamped = document.get("metadata", document).get("incarnation")
            assert stamped == OURS.incarnation, key

    async def test_a_project_refuses_to_read_or_build_on_state_another_incarnation_wrote(
        self, store: StateStore
    ) -> None:
        theirs = await write_versions(IncarnationScope(store, THEIRS), 2)
        ours = IncarnationScope(store, OURS)

        refused = await outcome(ours.read(PROJECT))
        assert refused.code == "CONFLICT_001"
        assert refused.details["found"] == {
            "serial": 2,
            "resource_count": 1,
            "lineage": theirs[0].lineage,
            "incarnation": THEIRS.incarnation,
        }
        assert (await outcome(ours.read_version(PROJECT, 1))).code == "CONFLICT_001"
        assert await ours.history(PROJECT) == []
        assert [h.serial for h in await IncarnationScope(store, THEIRS).history(PROJECT)] == [2, 1]
        assert (await outcome(ours.write(version(1, "lineage-ours")))).code == "STATE_002"

    async def test_state_written_before_incarnations_is_read_only_by_the_project_that_adopted_it(
        self, store: StateStore
    ) -> None:
        await write_versions(store, 1)  # no incarnation: written by an older infra-mcp

        assert (await IncarnationScope(store, LEGACY).read(PROJECT)) is not None
        assert (await outcome(IncarnationScope(store, OURS).read(PROJECT))).code == "CONFLICT_001"

    # ----------------------------------------------------------------- unsafe project ids

    @pytest.mark.parametrize("bad_id", BAD_PROJECT_IDS)
    async def test_unsafe_project_ids_are_refused_and_write_nothing(
        self, store: StateStore, raw: RawStorage, bad_id: str
    ) -> None:
        lock = LockInfo(lock_id="x", owner="a", operation="op", acquired_at=FakeClock().now, expires_at=FakeClock().now)
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: store.read(bad_id),
            lambda: store.write(version(1, "l", project_id=bad_id)),
            lambda: store.history(bad_id),
            lambda: store.read_version(bad_id, 1),
            lambda: store.acquire_lock(bad_id, owner="a", operation="op", lease_seconds=30),
            lambda: store.renew_lock(bad_id, lock, lease_seconds=30),
            lambda: store.release_lock(bad_id, lock),
            lambda: store.read_journal(bad_id),
            lambda: store.write_journal(Journal(project_id=bad_id)),
            lambda: store.delete_project_data(bad_id, owner=OURS),
        ]
        for call in calls:
            assert (await outcome(call())).code == "VALIDATION_001"
        assert raw.keys() == []


def _damaged(data: bytes | None, how: str) -> bytes:
    assert data is not None
    if how == "truncated":
        return data[: len(data) // 2]
    if how == "not json":
        return b"<html>this is not json</html>"
    if how == "not a state file":
        return b'{"hello": "world"}'
    document = json.loads(data)
    document["resources"][0]["properties"]["CidrBlock"] = "0.0.0.0/0"  # edited by hand, checksum left alone
    return json.dumps(document).encode()


# --------------------------------------------------------------------------- S3 failures


class S3FailureContract:
    """What an unusable bucket looks like: STATE_004 saying what to check, no trace, no secret.

    A subclass provides ``s3_store_for``: ``(bucket) -> StateStore`` against its moto, ``bucket``:
    an existing bucket, and ``iam_client``: a boto3 IAM client of the same moto.
    """

    async def test_a_missing_bucket_is_state_unavailable(self, s3_store_for: Callable[[str], StateStore]) -> None:
        store = s3_store_for("no-such-bucket-here")

        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: store.read(PROJECT),
            lambda: store.write(version(1, "l")),
            lambda: store.history(PROJECT),
            lambda: store.acquire_lock(PROJECT, owner="a", operation="op", lease_seconds=30),
        ]
        for call in calls:
            refused = await outcome(call())
            assert refused.code == "STATE_004"
            assert refused.details["aws_error_code"] == "NoSuchBucket"
            assert "Traceback" not in refused.message

    async def test_access_denied_is_state_unavailable_without_leaking_credentials(
        self,
        s3_store_for: Callable[[str], StateStore],
        bucket: str,
        iam_client: Any,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # moto does not apply IAM unless asked: create a user with no policy at all, then switch
        # moto's request authorisation on, so S3 answers the real 403 AccessDenied it would give.
        import moto.settings
        from moto.core.authorization import ActionAuthenticatorMixin

        iam_client.create_user(UserName="no-permissions")
        key = iam_client.create_access_key(UserName="no-permissions")["AccessKey"]
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
        monkeypatch.setattr(ActionAuthenticatorMixin, "request_count", 0)
        store = s3_store_for(bucket)

        for call in (lambda: store.read(PROJECT), lambda: store.write(version(1, "l"))):
            refused = await outcome(call())
            assert refused.code == "STATE_004"
            assert refused.details["aws_error_code"] == "AccessDenied"
            assert key["SecretAccessKey"] not in str(refused.to_dict())
            assert key["AccessKeyId"] not in str(refused.to_dict())


class RawBucket:
    """:class:`RawStorage` over a bucket and prefix, with a plain boto3 client."""

    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self._client = client
        self._bucket = bucket
        self._prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    def get(self, key: str) -> bytes | None:
        try:
            answer = self._client.get_object(Bucket=self._bucket, Key=self._prefix + key)
        except self._client.exceptions.NoSuchKey:
            return None
        data: bytes = answer["Body"].read()
        return data

    def put(self, key: str, data: bytes) -> None:
        self._client.put_object(Bucket=self._bucket, Key=self._prefix + key, Body=data)

    def keys(self) -> list[str]:
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=self._prefix)
        return sorted(item["Key"][len(self._prefix) :] for page in pages for item in page.get("Contents", []))

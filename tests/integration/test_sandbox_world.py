"""The world file: shared by several stores (as by several processes), kept across restarts, fast enough."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from infra_mcp.sandbox import world
from infra_mcp.sandbox.cloud import SandboxCloud
from infra_mcp.sandbox.world import FileWorldStore

VPC = "AWS::EC2::VPC"


def cloud_at(path: Path) -> SandboxCloud:
    return SandboxCloud(FileWorldStore(path))


def create_vpc(cloud: SandboxCloud) -> str:
    answer = cloud.call("CreateResource", {"TypeName": VPC, "DesiredState": '{"CidrBlock": "10.0.0.0/16"}'})
    return str(answer["ProgressEvent"]["Identifier"])


def listed(cloud: SandboxCloud, type_name: str = VPC) -> list[str]:
    identifiers: list[str] = []
    params = {"TypeName": type_name, "MaxResults": 100}
    while True:
        answer = cloud.call("ListResources", params)
        identifiers += [d["Identifier"] for d in answer["ResourceDescriptions"]]
        if "NextToken" not in answer:
            return identifiers
        params["NextToken"] = answer["NextToken"]


def test_a_second_store_on_the_same_file_sees_what_the_first_created(tmp_path: Path) -> None:
    path = tmp_path / "cloud.json"
    first, second = cloud_at(path), cloud_at(path)
    identifier = create_vpc(first)
    assert listed(second) == [identifier]
    second.call("DeleteResource", {"TypeName": VPC, "Identifier": identifier})
    assert listed(first) == []


def test_a_restarted_sandbox_finds_its_world_again(tmp_path: Path) -> None:
    path = tmp_path / "sandbox" / "cloud.json"
    identifier = create_vpc(cloud_at(path))
    assert listed(cloud_at(path)) == [identifier]


def test_reads_do_not_rewrite_the_world_file(tmp_path: Path) -> None:
    path = tmp_path / "cloud.json"
    cloud = cloud_at(path)
    identifier = create_vpc(cloud)
    before = path.stat().st_mtime_ns, path.stat().st_ino
    cloud.call("GetResource", {"TypeName": VPC, "Identifier": identifier})
    listed(cloud)
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == before


def test_concurrent_writers_lose_no_resource(tmp_path: Path) -> None:
    path = tmp_path / "cloud.json"
    clouds = [cloud_at(path) for _ in range(4)]

    def work(cloud: SandboxCloud) -> None:
        for _ in range(15):
            create_vpc(cloud)

    threads = [threading.Thread(target=work, args=(cloud,)) for cloud in clouds for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(listed(cloud_at(path))) == 120


def test_an_unreadable_world_file_is_moved_aside_and_the_sandbox_starts_empty(tmp_path: Path) -> None:
    path = tmp_path / "cloud.json"
    path.write_text("{ not json", encoding="utf-8")
    assert listed(cloud_at(path)) == []
    assert [p.name for p in tmp_path.glob("cloud.json.corrupt-*")]


@pytest.mark.slow
def test_a_thousand_operations_over_two_hundred_resources_stay_fast(tmp_path: Path) -> None:
    cloud = cloud_at(tmp_path / "cloud.json")
    started = time.perf_counter()
    events = [
        cloud.call("CreateResource", {"TypeName": VPC, "DesiredState": '{"CidrBlock": "10.0.0.0/16"}'})["ProgressEvent"]
        for _ in range(200)
    ]
    patch = json.dumps([{"op": "add", "path": "/EnableDnsSupport", "value": True}])
    for event in events:
        cloud.call("GetResourceRequestStatus", {"RequestToken": event["RequestToken"]})
        cloud.call("GetResource", {"TypeName": VPC, "Identifier": event["Identifier"]})
        cloud.call("UpdateResource", {"TypeName": VPC, "Identifier": event["Identifier"], "PatchDocument": patch})
        cloud.call("ListResources", {"TypeName": VPC})
    elapsed = time.perf_counter() - started
    # About 2 s on a laptop; the bound only catches an accidental quadratic rewrite.
    assert elapsed < 20, f"1,000 operations took {elapsed:.1f}s"


def test_a_mutation_appends_to_the_log_instead_of_rewriting_the_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "cloud.json"
    cloud = cloud_at(path)
    first = create_vpc(cloud)  # the first change writes the snapshot
    before = path.stat().st_mtime_ns, path.stat().st_ino
    second = create_vpc(cloud)
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == before
    lines = (tmp_path / "cloud.json.log").read_bytes().splitlines()
    assert len(lines) == 1
    assert "pending" in json.loads(lines[0])
    assert sorted(listed(cloud_at(path))) == sorted([first, second])


def test_a_line_cut_off_by_a_crash_is_dropped_and_the_log_stays_usable(tmp_path: Path) -> None:
    path = tmp_path / "cloud.json"
    kept = [create_vpc(cloud_at(path)) for _ in range(2)]
    log = tmp_path / "cloud.json.log"
    whole = log.read_bytes()
    log.write_bytes(whole + b'{"requests":{"half-written')  # a writer killed mid-append
    cloud = cloud_at(path)
    assert sorted(listed(cloud)) == sorted(kept)
    assert log.read_bytes() == whole
    third = create_vpc(cloud)
    assert sorted(listed(cloud_at(path))) == sorted([*kept, third])


def test_the_log_is_compacted_into_the_snapshot_and_replaying_it_again_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(world, "_MIN_COMPACT_BYTES", 0)
    path = tmp_path / "cloud.json"
    cloud = cloud_at(path)
    created = [create_vpc(cloud) for _ in range(30)]
    log = tmp_path / "cloud.json.log"
    assert log.stat().st_size < path.stat().st_size  # compacted at least once
    assert sorted(listed(cloud_at(path))) == sorted(created)
    # A crash between replacing the snapshot and emptying the log: the old lines are replayed
    # over a snapshot that already holds them.
    stale = log.read_bytes()
    create_vpc(cloud)
    for _ in range(40):
        if log.stat().st_size == 0:
            break
        create_vpc(cloud)
    assert log.stat().st_size == 0
    log.write_bytes(stale)
    everything = listed(cloud)
    assert sorted(listed(cloud_at(path))) == sorted(everything)


def test_a_store_catches_up_with_lines_another_store_appended(tmp_path: Path) -> None:
    path = tmp_path / "cloud.json"
    first, second = cloud_at(path), cloud_at(path)
    identifiers = [create_vpc(first)]
    assert listed(second) == identifiers
    identifiers.append(create_vpc(second))
    identifiers.append(create_vpc(first))
    assert sorted(listed(second)) == sorted(identifiers)
    assert sorted(listed(first)) == sorted(identifiers)

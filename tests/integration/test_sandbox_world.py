"""The world file: shared by several stores (as by several processes), kept across restarts, fast enough."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

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

"""Helpers for the plan -> approve -> execute e2e tests: elicitation answers, desired states,
the plan row in SQLite, and a direct look at the sandbox's world.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mcp import Client
from mcp_types import ElicitRequestParams, ElicitResult

from infra_mcp.sandbox.cloud import SandboxCloud
from infra_mcp.sandbox.world import FileWorldStore
from tests.e2e.conftest import call_ok, read_json

ElicitationCallback = Callable[[Any, ElicitRequestParams], Any]


class Human:
    """An elicitation callback that answers like a person would, and remembers what it was asked."""

    def __init__(self, action: str = "accept", *, approve: bool = True, comment: str = "ok") -> None:
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
    assert plan["plan"]["status"] == "pending"
    return str(plan["plan"]["id"])


async def approve(client: Client, plan_id: str) -> dict[str, Any]:
    answer = await call_ok(client, "approve_plan", {"plan_id": plan_id, "comment": "reviewed"})
    assert answer["outcome"] == "approved", answer
    return answer


async def plan_of(client: Client, plan_id: str) -> dict[str, Any]:
    return dict((await call_ok(client, "get_plan", {"plan_id": plan_id}))["plan"])


async def audit(client: Client, project_id: str = "web") -> list[dict[str, Any]]:
    return list(await read_json(client, f"infra://projects/{project_id}/audit"))


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


def age_approval(data_dir: Path, plan_id: str, minutes: int) -> None:
    """Move a plan's approval ``minutes`` into the past, as if that much time had passed since."""

    def shift(doc: dict[str, Any]) -> None:
        for key in ("approved_at", "expires_at"):
            when = datetime.fromisoformat(doc["approval"][key].replace("Z", "+00:00"))
            doc["approval"][key] = (when - timedelta(minutes=minutes)).isoformat()

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

"""A write-only value (a database password) never reaches the agent, in clear or as a digest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mcp_types import ElicitResult

from infra_mcp.domain.sealed import secret_digest
from tests.e2e.conftest import ClientFactory, call_ok

PASSWORD = "Tr0ub4dor&3-correct-horse"


async def _approve(context: object, params: object) -> ElicitResult:
    return ElicitResult(action="accept", content={"approve": True})


async def test_a_password_is_never_shown_in_plans_state_or_resources(connect: ClientFactory, data_dir: Path) -> None:
    desired = {
        "resources": [
            {
                "name": "db",
                "type": "AWS::RDS::DBInstance",
                "properties": {
                    "DBInstanceClass": "db.t3.micro",
                    "Engine": "postgres",
                    "AllocatedStorage": "20",
                    "MasterUsername": "app",
                    "MasterUserPassword": PASSWORD,
                },
            }
        ]
    }
    digest = secret_digest(PASSWORD)
    seen: list[str] = []
    async with connect(elicitation_callback=_approve) as client:
        await call_ok(client, "create_project", {"project_id": "db"})
        view = await call_ok(client, "plan_changes", {"project_id": "db", "desired_state": desired})
        seen.append(json.dumps(view))
        plan_id = view["plan_id"]
        await call_ok(client, "approve_plan", {"plan_id": plan_id})
        executed = await call_ok(client, "execute_plan", {"plan_id": plan_id})
        assert executed["status"] == "executed"
        seen.append(json.dumps(executed))
        seen.append(json.dumps(await call_ok(client, "list_resources", {"project_id": "db"})))
        seen.append(json.dumps(await call_ok(client, "get_resource", {"project_id": "db", "resource": "db"})))
        for uri in (
            "infra://projects/db/state",
            "infra://projects/db/state/history/1",
            f"infra://projects/db/plans/{plan_id}",
            f"infra://projects/db/plans/{plan_id}/diff",
            "infra://projects/db/audit",
        ):
            result = await client.read_resource(uri)
            seen.append(result.contents[0].text)  # type: ignore[union-attr]
    everything = "\n".join(seen)
    assert PASSWORD not in everything
    assert digest not in everything
    assert hashlib.sha256(PASSWORD.encode()).hexdigest() not in everything
    # Nor in clear on disk: the database and the state files hold it sealed, or as a digest only;
    # and that digest is keyed: a plain SHA-256 (crackable offline for a weak password) is nowhere.
    plain = hashlib.sha256(json.dumps(PASSWORD, ensure_ascii=False).encode()).hexdigest()
    keyed_seen = False
    for path in data_dir.rglob("*"):
        if path.is_file() and path.name != "secret.key":
            content = path.read_bytes()
            assert PASSWORD.encode() not in content, path
            assert plain.encode() not in content, path
            keyed_seen = keyed_seen or b"hmac-sha256:" in content
    assert keyed_seen

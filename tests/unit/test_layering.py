"""The faces stay thin and acyclic: tool modules never import the app module, the terminal CLI
never imports the server, and each tool parameter type is defined once."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "infra_mcp"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    return found | {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}


@pytest.mark.parametrize("module", sorted(p.name for p in (SRC / "server").glob("*.py") if p.name != "app.py"))
def test_no_server_module_imports_the_app_module_that_imports_it(module: str) -> None:
    assert "infra_mcp.server.app" not in _imports(SRC / "server" / module)


def test_the_terminal_cli_shows_plans_without_the_server_package() -> None:
    assert not {m for m in _imports(SRC / "plans_cli.py") if m.startswith("infra_mcp.server")}


@pytest.mark.parametrize("name", ["ProjectId", "PlanId", "Description", "Runtime"])
def test_a_shared_name_is_defined_once(name: str) -> None:
    places = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = [t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)]
            if (
                isinstance(node, ast.ClassDef | ast.AnnAssign) and getattr(node, "name", None) == name
            ) or name in targets:
                places.append(path)
    assert len(places) == 1, places

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


def _imported_by_app() -> list[str]:
    """The server modules ``server/app.py`` imports (``server/http.py`` serves the app, above it)."""
    return sorted(m.rsplit(".", 1)[1] for m in _imports(SRC / "server" / "app.py") if m.startswith("infra_mcp.server."))


@pytest.mark.parametrize("module", _imported_by_app())
def test_no_server_module_imports_the_app_module_that_imports_it(module: str) -> None:
    assert "infra_mcp.server.app" not in _imports(SRC / "server" / f"{module}.py")


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


def test_no_module_outside_the_plan_sets_a_plans_status() -> None:
    """A plan's status moves only through its lifecycle methods (``Plan.approve``, ``Plan.start``...)."""
    setters = []
    for path in SRC.rglob("*.py"):
        if path == SRC / "domain" / "plan.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "model_copy"):
                continue
            for keyword in node.keywords:
                update = keyword.value
                if keyword.arg == "update" and isinstance(update, ast.Dict):
                    status = [
                        v
                        for k, v in zip(update.keys, update.values, strict=True)
                        if getattr(k, "value", None) == "status"
                    ]
                    # A resource's, a change outcome's or a drift finding's status is not the plan's.
                    others = ("ResourceStatus", "ChangeOutcomeStatus", "DriftStatus")
                    if status and not any(name in ast.unparse(status[0]) for name in others):
                        setters.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert setters == []

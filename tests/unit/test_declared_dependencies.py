"""Every third-party package ``src/infra_mcp`` imports is a declared dependency.

An undeclared import works only while something else happens to pull the package in: a leaner
resolver or an upstream release that drops it breaks a fresh ``uvx infra-mcp-server``.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported_top_level_modules() -> set[str]:
    modules: set[str] = set()
    for path in (ROOT / "src" / "infra_mcp").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"infra_mcp"}


def test_every_imported_package_is_declared_in_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {_normal(re.split(r"[\s<>=!~\[;]", spec, maxsplit=1)[0]) for spec in project["dependencies"]}
    owners = importlib.metadata.packages_distributions()
    undeclared = {}
    for module in sorted(_imported_top_level_modules()):
        distributions = {_normal(d) for d in owners.get(module, [module])}
        if not distributions & declared:
            undeclared[module] = sorted(distributions)
    assert undeclared == {}, f"imported but not declared in [project].dependencies: {undeclared}"

"""Every error message written in ``src/`` names the next step (issue 11, "Errors that help the next call").

The check reads the source with :mod:`ast`: each construction of an :class:`InfraError` subclass whose
message is written at the call (a string literal, an f-string, or literals joined with ``+`` or by
adjacency) must contain a *next-step clause*.

A next-step clause is a clause that begins with one of :data:`NEXT_STEP_OPENERS`, compared without
regard to case. A clause begins at the start of the message, after a sentence stop (``.``, ``?``,
``!``), after ``;``, ``:``, ``(``, a dash (``-``, ``—``), or after the words ``then``, ``or``, ``and``,
``so``, ``else``, ``otherwise``. A verb in the middle of a clause ("the bucket is in use") does not
count: the step has to be said as an instruction.

Messages built somewhere else (the first argument is a name or a call) cannot be checked here;
:data:`MESSAGES_BUILT_ELSEWHERE` lists each such site with where its text comes from, checked by
reading, and the test fails when a new one appears or a listed one goes away.

``src/infra_mcp/sandbox/`` is left out: it imitates AWS's own error texts on purpose.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import infra_mcp.errors as errors_module
from infra_mcp.errors import InfraError

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
EXCLUDED = (SRC / "infra_mcp" / "sandbox",)

#: Words and phrases that open an instruction to the caller (an agent, or a person at the CLI).
NEXT_STEP_OPENERS: tuple[str, ...] = (
    "add ",
    "approve",
    "ask ",
    "call ",
    "check ",
    "choose ",
    "correct ",
    "create ",
    "delete ",
    "destroy",
    "do not",
    "edit ",
    "execute",
    "fix ",
    "free ",
    "give ",
    "import",
    "install",
    "keep ",
    "leave ",
    "list ",
    "make ",
    "move ",
    "nothing to do",
    "pass ",
    "pick ",
    "plan again",
    "point ",
    "raise ",
    "read ",
    "reject",
    "remove ",
    "rename",
    "replace ",
    "report ",
    "restore",
    "retry",
    "run ",
    "send ",
    "see ",
    "set ",
    "start ",
    "stop ",
    "tell ",
    "try ",
    "update ",
    "upgrade",
    "use ",
    "wait",
    "write ",
)

_CLAUSE_START = r"(?:^|[.?!;:(—-]\s*|\b(?:then|or|and|so|else|otherwise),?\s+)"
NEXT_STEP = re.compile(
    _CLAUSE_START + r"\s*[`'\"]?(?:" + "|".join(re.escape(o) for o in NEXT_STEP_OPENERS) + ")",
    re.IGNORECASE,
)

#: Doubled punctuation: a stop followed by another stop ("state.. Fix", "VpcId?. Fix", ". ."); "..." is kept.
DOUBLED_PUNCTUATION = re.compile(r"(?<!\.)\.\.(?=\s|$)|[?!]\.(?=\s|$)|\.\s+\.")

#: Sites whose message is a variable or a call, with where the text comes from. Checked by reading:
#: each source named here either carries a next step itself or is followed by one at the call.
MESSAGES_BUILT_ELSEWHERE: dict[tuple[str, str], str] = {
    ("src/infra_mcp/domain/project.py", "require"): (
        "ProjectHidden re-raises no_such_project(...).message: 'No project ... Use list_projects ...'"
    ),
    ("src/infra_mcp/services/templates.py", "_in_template_terms"): (
        "re-raises a ValidationFailed from planning/validation with 'desired state' renamed 'template'; "
        "those messages are literals in src/ and checked above"
    ),
    ("src/infra_mcp/upstream/client.py", "_call"): (
        "literal + _next_step(exc, call), whose every return opens with 'Check' or ends '...: check ...'"
    ),
}

#: Stand-in for an f-string's interpolated value, so placeholders never look like an instruction.
_HOLE = "\x00"


@dataclass(frozen=True)
class Site:
    """One construction of an InfraError subclass in ``src/``."""

    path: str
    line: int
    function: str
    error: str
    messages: list[str] | None  # every text the message can have; None: built elsewhere

    def where(self) -> str:
        return f"{self.path}:{self.line}"


def _error_class_names(trees: dict[Path, ast.Module]) -> set[str]:
    names = {
        name for name, value in vars(errors_module).items() if isinstance(value, type) and issubclass(value, InfraError)
    }
    grew = True
    while grew:  # subclasses defined outside errors.py (ProjectHidden(NotFound), ...)
        grew = False
        for tree in trees.values():
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and node.name not in names:
                    bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
                    if bases & names:
                        names.add(node.name)
                        grew = True
    return names


Names = dict[str, list[ast.expr]]

#: How deep names are followed (``message`` -> ``RESTORE_HINT``), and how many variants a message may have.
_DEPTH, _MAX_VARIANTS = 3, 256


def _texts(node: ast.expr, names: Names, depth: int = 0) -> list[str] | None:
    """Every text the message ``node`` can have, or None if it is not written where it can be read.

    Literals, f-strings, ``+`` and ``a if c else b`` are read. An f-string's interpolation of a name
    bound only to such text (a module constant such as ``RESTORE_HINT``, or a local ``hint = "..."``
    in each branch) is replaced by each of those texts in turn; any other interpolation becomes
    ``_HOLE``, which never counts as an instruction.
    """
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        variants = [""]
        for value in node.values:
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                part = [value.value]
            elif isinstance(value, ast.FormattedValue):
                part = _bound(value.value, names, depth) or [_HOLE]
            else:
                part = [_HOLE]
            variants = [a + b for a in variants for b in part][:_MAX_VARIANTS]
        return variants
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _texts(node.left, names, depth), _texts(node.right, names, depth)
        if left is None or right is None:
            return None
        return [a + b for a in left for b in right][:_MAX_VARIANTS]
    if isinstance(node, ast.IfExp):
        body, orelse = _texts(node.body, names, depth), _texts(node.orelse, names, depth)
        return None if body is None or orelse is None else body + orelse
    if isinstance(node, ast.Name):
        return _bound(node, names, depth)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "strip":
        texts = _texts(node.func.value, names, depth)
        return None if texts is None else [text.strip() for text in texts]
    return None


def _bound(node: ast.expr, names: Names, depth: int) -> list[str] | None:
    """The texts a plain name is bound to, if every binding is readable text."""
    if not isinstance(node, ast.Name) or not names.get(node.id) or depth >= _DEPTH:
        return None
    variants: list[str] = []
    for value in names[node.id]:
        texts = _texts(value, names, depth + 1)
        if texts is None:
            return None
        variants += texts
    return variants


def _bindings(scope: ast.AST) -> Names:
    """Every value assigned to each plain name in ``scope`` (``a = x`` and ``a, b = x, y``)."""
    found: Names = {}
    for node in ast.walk(scope):
        if not isinstance(node, ast.Assign | ast.AnnAssign) or node.value is None:
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for target in targets:
            if isinstance(target, ast.Name):
                found.setdefault(target.id, []).append(node.value)
            elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                for item, value in zip(target.elts, node.value.elts, strict=False):
                    if isinstance(item, ast.Name):
                        found.setdefault(item.id, []).append(value)
    return found


def _module_constants(trees: dict[Path, ast.Module]) -> Names:
    """Upper-case module-level names bound to text anywhere in ``src/`` (``RESTORE_HINT = "..."``)."""
    found: Names = {}
    for tree in trees.values():
        for node in tree.body:
            if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name) and target.id.isupper() and _texts(node.value, {}) is not None:
                        found.setdefault(target.id, []).append(node.value)
    return found


def _sites() -> list[Site]:
    trees = {
        path: ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for path in sorted(SRC.rglob("*.py"))
        if not any(path.is_relative_to(excluded) for excluded in EXCLUDED)
    }
    error_names = _error_class_names(trees)
    constants = _module_constants(trees)
    sites: list[Site] = []
    for path, tree in trees.items():
        relative = path.relative_to(ROOT).as_posix()
        if relative == "src/infra_mcp/errors.py":
            continue
        functions: dict[int, ast.FunctionDef | ast.AsyncFunctionDef] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for inner in ast.walk(node):
                    functions[id(inner)] = node  # innermost wins: ast.walk visits outer functions first
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name not in error_names:
                continue
            message_node = node.args[0] if node.args else None
            for keyword in node.keywords:
                if keyword.arg == "message":
                    message_node = keyword.value
            function = functions.get(id(node))
            names = {**constants, **(_bindings(function) if function is not None else {})}
            texts = _texts(message_node, names) if message_node is not None else None
            sites.append(Site(relative, node.lineno, function.name if function else "<module>", name, texts))
    return sites


def _start(message: str) -> str:
    return message.replace(_HOLE, "{…}")[:100]


def test_the_scan_finds_the_error_constructions_in_src() -> None:
    sites = _sites()
    assert len(sites) > 100
    assert any(site.error == "ProjectHidden" for site in sites), "subclasses outside errors.py are found too"


def test_every_error_message_written_in_src_names_the_next_step() -> None:
    offenders = [
        f"{site.where()} {site.error}: {_start(message)!r}"
        for site in _sites()
        for message in site.messages or []
        if not NEXT_STEP.search(message)
    ]
    assert not offenders, (
        f"{len(offenders)} error message(s) do not say what to do next "
        f"(add a clause opening with one of NEXT_STEP_OPENERS):\n" + "\n".join(offenders)
    )


def test_no_error_message_written_in_src_has_doubled_punctuation() -> None:
    offenders = [
        f"{site.where()} {site.error}: {_start(message)!r}"
        for site in _sites()
        for message in site.messages or []
        if DOUBLED_PUNCTUATION.search(message.replace(_HOLE, "x"))
    ]
    assert not offenders, "doubled punctuation:\n" + "\n".join(offenders)


def test_messages_built_elsewhere_are_the_listed_ones_each_checked_by_reading() -> None:
    found = {(site.path, site.function) for site in _sites() if site.messages is None}
    assert found == set(MESSAGES_BUILT_ELSEWHERE), (
        "sites whose message is not written at the call changed; read each new one, make sure its text "
        "names the next step, and list it in MESSAGES_BUILT_ELSEWHERE:\n"
        f"new: {sorted(found - set(MESSAGES_BUILT_ELSEWHERE))}\n"
        f"gone: {sorted(set(MESSAGES_BUILT_ELSEWHERE) - found)}"
    )


def test_the_next_step_rule_reads_clauses_not_words() -> None:
    assert NEXT_STEP.search("Project 'x' not found; use list_projects to see your projects.")
    assert NEXT_STEP.search("The state is locked. Wait for the other operation, then retry.")
    assert NEXT_STEP.search("Nothing to do: the plan has no changes.")
    assert not NEXT_STEP.search("The bucket is in use by another project.")
    assert not NEXT_STEP.search("Failed because the server stopped.")


def test_the_doubled_punctuation_rule_keeps_an_ellipsis() -> None:
    assert DOUBLED_PUNCTUATION.search("state.. Fix it")
    assert DOUBLED_PUNCTUATION.search("VpcId?. Fix it")
    assert DOUBLED_PUNCTUATION.search("done. . Next")
    assert not DOUBLED_PUNCTUATION.search("waiting... then retry.")

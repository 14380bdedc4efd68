"""Prompt files (``prompts/*.md``) served as MCP prompts.

A prompt file is Markdown with TOML front matter between ``+++`` lines::

    +++
    name = "setup-project"
    title = "Set up a project"
    description = "..."
    [[arguments]]
    name = "goal"
    description = "..."
    required = true
    [[arguments]]
    name = "project_id"
    required = false
    present = "use `{value}`"          # what {project_id} becomes when given (default: the value)
    absent = "propose a short one"     # ... and when left out (default: nothing)
    +++
    Body, with {goal} substituted (write literal braces as {{ and }}).

An optional argument says what the body reads with and without it, so the prompt renders as clean
sentences either way (never "Pick `` if given").

A malformed file stops start-up with a message naming the file and the problem: a server
that silently drops a prompt is harder to debug than one that refuses to start.
"""

from __future__ import annotations

import re
import string
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,63}$")


class PromptFileError(ValueError):
    """A prompt file that cannot be served."""


@dataclass(frozen=True)
class PromptArgumentSpec:
    name: str
    description: str = ""
    required: bool = True
    present: str = "{value}"
    absent: str = ""

    def fill(self, value: Any) -> str:
        """What ``{name}`` becomes in the body: ``present`` with the value, or ``absent``."""
        return self.present.replace("{value}", str(value)) if value else self.absent


@dataclass(frozen=True)
class PromptSpec:
    name: str
    title: str
    description: str
    body: str
    source: str
    arguments: tuple[PromptArgumentSpec, ...] = field(default_factory=tuple)

    def render(self, values: dict[str, Any]) -> str:
        missing = [a.name for a in self.arguments if a.required and not values.get(a.name)]
        if missing:
            raise ValueError(f"prompt {self.name!r} needs argument(s) {missing}")
        filled = {a.name: a.fill(values.get(a.name)) for a in self.arguments}
        return self.body.format_map(filled)


def parse_prompt(text: str, source: str) -> PromptSpec:
    """Parse one prompt file.

    Raises:
        PromptFileError: naming ``source`` and what is wrong.
    """
    if not text.startswith("+++\n"):
        raise PromptFileError(f"{source}: must start with a '+++' line opening TOML front matter")
    end = text.find("\n+++\n", 4)
    if end < 0:
        raise PromptFileError(f"{source}: front matter is not closed by a '+++' line")
    try:
        meta = tomllib.loads(text[4:end])
    except tomllib.TOMLDecodeError as exc:
        raise PromptFileError(f"{source}: front matter is not valid TOML: {exc}") from None
    body = text[end + 5 :].strip()
    name = meta.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise PromptFileError(f"{source}: 'name' must be lower-case letters, digits and hyphens, got {name!r}")
    for key in ("title", "description"):
        if not isinstance(meta.get(key), str) or not meta[key].strip():
            raise PromptFileError(f"{source}: '{key}' is required and must be a non-empty string")
    if not body:
        raise PromptFileError(f"{source}: the prompt body is empty")
    raw_args = meta.get("arguments", [])
    if not isinstance(raw_args, list):
        raise PromptFileError(f"{source}: 'arguments' must be an array of tables ([[arguments]])")
    arguments: list[PromptArgumentSpec] = []
    for index, raw in enumerate(raw_args):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"].isidentifier():
            raise PromptFileError(f"{source}: arguments[{index}] needs a 'name' that is a valid identifier")
        present, absent = raw.get("present", "{value}"), raw.get("absent", "")
        if not isinstance(present, str) or "{value}" not in present or not isinstance(absent, str):
            raise PromptFileError(
                f"{source}: arguments[{index}] 'present' must be a string containing {{value}}, 'absent' a string"
            )
        arguments.append(
            PromptArgumentSpec(
                name=raw["name"],
                description=str(raw.get("description", "")),
                required=bool(raw.get("required", True)),
                present=present,
                absent=absent,
            )
        )
    declared = {a.name for a in arguments}
    try:
        used = {f for _, f, _, _ in string.Formatter().parse(body) if f is not None}
    except ValueError as exc:
        raise PromptFileError(
            f"{source}: body has unbalanced braces ({exc}); write literal braces as {{{{ }}}}"
        ) from None
    unknown = sorted(used - declared)
    if unknown:
        raise PromptFileError(f"{source}: body uses {unknown} which are not declared in [[arguments]]")
    return PromptSpec(
        name=name,
        title=meta["title"].strip(),
        description=meta["description"].strip(),
        body=body,
        source=source,
        arguments=tuple(arguments),
    )


def prompt_files(folder: Path | None = None) -> list[tuple[str, str]]:
    """(source, text) of every prompt file: ``folder`` if given, else the packaged prompts.

    The wheel carries them as ``infra_mcp/_prompts``; an editable checkout reads ``<repo>/prompts``.
    """
    if folder is not None:
        return [(str(p), p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.md"))]
    packaged = resources.files("infra_mcp").joinpath("_prompts")
    if packaged.is_dir():
        return [
            (f"infra_mcp/_prompts/{p.name}", p.read_text(encoding="utf-8"))
            for p in sorted(packaged.iterdir(), key=lambda p: p.name)
            if p.name.endswith(".md")
        ]
    checkout = Path(__file__).resolve().parents[3] / "prompts"
    return prompt_files(checkout) if checkout.is_dir() else []


def load_prompts(files: Iterable[tuple[str, str]]) -> list[PromptSpec]:
    """Parse every file; refuse duplicates.

    Raises:
        PromptFileError: the first malformed file, by name.
    """
    specs: list[PromptSpec] = []
    seen: dict[str, str] = {}
    for source, text in files:
        spec = parse_prompt(text, source)
        if spec.name in seen:
            raise PromptFileError(f"{source}: prompt name {spec.name!r} is already used by {seen[spec.name]}")
        seen[spec.name] = source
        specs.append(spec)
    return specs

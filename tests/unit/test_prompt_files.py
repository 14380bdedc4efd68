"""Prompt files: the shipped ones parse; a malformed one is refused with its name and the problem."""

from __future__ import annotations

import re
from typing import Any

import pytest

from infra_mcp.server.prompts import PromptFileError, load_prompts, parse_prompt, prompt_files

GOOD = '+++\nname = "x"\ntitle = "X"\ndescription = "d"\n[[arguments]]\nname = "goal"\n+++\nDo {goal}.'


def test_every_shipped_prompt_parses_and_renders() -> None:
    specs = load_prompts(prompt_files())
    assert {"setup-project", "failed-execution", "adopt-existing"} <= {s.name for s in specs}
    for spec in specs:
        values = {a.name: "value" for a in spec.arguments}
        assert spec.render(values)


def test_arguments_are_substituted_and_required_ones_enforced() -> None:
    spec = parse_prompt(GOOD, "x.md")
    assert spec.render({"goal": "a VPC"}) == "Do a VPC."
    with pytest.raises(ValueError, match="goal"):
        spec.render({})


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("no front matter", "must start"),
        ("+++\nname = 'x'\n", "not closed"),
        ("+++\nname = \n+++\nbody", "not valid TOML"),
        ('+++\nname = "Bad Name"\ntitle = "t"\ndescription = "d"\n+++\nbody', "'name'"),
        ('+++\nname = "x"\ndescription = "d"\n+++\nbody', "'title'"),
        ('+++\nname = "x"\ntitle = "t"\ndescription = "d"\n+++\n', "body is empty"),
        ('+++\nname = "x"\ntitle = "t"\ndescription = "d"\n+++\nUse {undeclared}', "not declared"),
        ('+++\nname = "x"\ntitle = "t"\ndescription = "d"\n+++\nUnbalanced {', "unbalanced"),
        ('+++\nname = "x"\ntitle = "t"\ndescription = "d"\narguments = 3\n+++\nb', "array of tables"),
    ],
)
def test_malformed_files_are_refused_naming_the_file(text: str, problem: str) -> None:
    with pytest.raises(PromptFileError) as caught:
        parse_prompt(text, "prompts/bad.md")
    assert "prompts/bad.md" in str(caught.value)
    assert problem in str(caught.value)


def test_two_files_with_one_name_are_refused() -> None:
    with pytest.raises(PromptFileError, match="already used"):
        load_prompts([("a.md", GOOD), ("b.md", GOOD)])


# What a badly filled template leaves behind: an empty code span, a placeholder, "None", a doubled stop.
_DEBRIS = re.compile(r"(?<!`)``(?!`)|\{[a-z_]+\}|\bNone\b|(?<!\.)[.?!]\.(?=\s|$)| [.,;:](?=\s|$)|  +\S.*if given")


def _renders(spec: Any, values: dict[str, str]) -> str:
    text = spec.render(values)
    assert not _DEBRIS.search(text), (spec.name, sorted(values), _DEBRIS.search(text))
    return str(text)


@pytest.mark.parametrize("spec", load_prompts(prompt_files()), ids=lambda spec: spec.name)
def test_each_shipped_prompt_renders_cleanly_with_and_without_its_optional_arguments(spec: Any) -> None:
    required = {a.name: f"given-{a.name.replace('_', '-')}" for a in spec.arguments if a.required}
    everything = {a.name: f"given-{a.name.replace('_', '-')}" for a in spec.arguments}
    bare = _renders(spec, required)
    full = _renders(spec, everything)
    for name, value in everything.items():
        assert value in full, (spec.name, name)
        if name not in required:
            assert value not in bare, (spec.name, name)

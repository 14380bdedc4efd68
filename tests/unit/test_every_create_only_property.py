"""Every create-only and conditionally create-only property of every registry type plans as a replacement.

CloudFormation replaces a resource when one of its schema's ``createOnlyProperties`` changes, and
documents a replacement for some changes of ``conditionalCreateOnlyProperties``: the plan takes the
safe side for those and says that it did, except where CloudFormation's documentation says the
change is an update (``domain/interruptions.py``), which plans in place and names the interruption.
This sweeps the whole catalog, not a few examples.
"""

from __future__ import annotations

from typing import Any

import pytest

from infra_mcp.domain.diff import diff_states
from infra_mcp.domain.interruptions import INTERRUPTIONS, in_place
from infra_mcp.domain.plan import Action, ResourceSpec, RiskLevel
from infra_mcp.domain.risk import DATA_HOLDING, with_risk
from infra_mcp.domain.state import StateFile, StateResource
from tests.unit.plan_builders import catalog

REGION = "us-east-1"


def _value_at(pointer: str, leaf: str) -> tuple[str, Any]:
    """``/A/*/B`` -> ``("A", [{"B": leaf}])``: the top-level property holding ``leaf`` at that pointer."""
    parts = pointer.removeprefix("/properties/").split("/")
    value: Any = leaf
    for part in reversed(parts[1:]):
        value = [value] if part == "*" else {part: value}
    return parts[0], value


def _cases() -> list[tuple[str, str, str]]:
    found = []
    for type_name in catalog().type_names(REGION):
        info = catalog().get(type_name, REGION)
        for kind, pointers in (
            ("create-only", info.schema.get("createOnlyProperties", [])),
            ("conditional", info.schema.get("conditionalCreateOnlyProperties", [])),
        ):
            found.extend((type_name, pointer, kind) for pointer in pointers if pointer.startswith("/properties/"))
    return found


CASES = _cases()


def test_the_sweep_covers_the_catalog() -> None:
    assert len({t for t, _, _ in CASES}) > 1000
    assert any(kind == "conditional" for _, _, kind in CASES)


@pytest.mark.parametrize("chunk", range(8))
def test_changing_any_create_only_or_conditional_create_only_property_plans_a_replacement(chunk: int) -> None:
    wrong = []
    for type_name, pointer, kind in CASES[chunk::8]:
        key, before = _value_at(pointer, "value-a")
        _, after = _value_at(pointer, "value-b")
        current = StateFile.empty("web").model_copy(
            update={
                "resources": [
                    StateResource(
                        id="phys-1",
                        name="r",
                        type=type_name,
                        region=REGION,
                        properties={key: before},
                        declared={key: before},
                    )
                ]
            }
        )
        desired = [ResourceSpec(name="r", type=type_name, region=REGION, properties={key: after})]
        [change] = diff_states(desired, current, catalog(), full=True, include_noops=False)
        top = pointer.removeprefix("/properties/").split("/")[0]
        if kind == "conditional" and in_place(type_name, top):
            # CloudFormation documents this change as an update, perhaps interrupting: the plan names it.
            if change.action is not Action.UPDATE or (INTERRUPTIONS[type_name][top] and not change.interruptions):
                wrong.append(f"{type_name} {pointer} ({kind}, documented in place): {change.action.value}")
        elif change.action is not Action.REPLACE or not change.replacement_reasons:
            wrong.append(f"{type_name} {pointer} ({kind}): {change.action.value}")
        elif (
            kind == "conditional"
            and not any("depend" in r for r in change.replacement_reasons)
            and not any(
                p.startswith(pointer + "/") for p in catalog().get(type_name, REGION).schema["createOnlyProperties"]
            )
        ):
            # (A create-only property inside it makes the replacement certain, and is said as such.)
            wrong.append(f"{type_name} {pointer}: a conditional replacement that does not say so")
    assert wrong == []


@pytest.mark.parametrize("type_name", sorted(DATA_HOLDING))
def test_replacing_any_data_store_is_high_risk_and_says_what_is_lost(type_name: str) -> None:
    if type_name not in catalog().type_names(REGION):
        pytest.skip(f"{type_name} is not a registry type in {REGION}")
    info = catalog().get(type_name, REGION)
    pointers = [*info.schema.get("createOnlyProperties", []), *info.schema.get("conditionalCreateOnlyProperties", [])]
    pointer = next((p for p in pointers if p.count("/") == 2 and not in_place(type_name, p.split("/")[2])), None)
    if pointer is None:
        pytest.skip(f"{type_name} has no top-level property whose change replaces it")
    key = pointer.removeprefix("/properties/")
    current = StateFile.empty("web").model_copy(
        update={
            "resources": [
                StateResource(id="phys-1", name="r", type=type_name, region=REGION, properties={}, declared={key: "a"})
            ]
        }
    )
    desired = [ResourceSpec(name="r", type=type_name, region=REGION, properties={key: "b"})]
    [change] = diff_states(desired, current, catalog(), full=True, include_noops=False)
    assert change.action is Action.REPLACE
    rated = with_risk(change)
    assert rated.risk is RiskLevel.HIGH
    assert any(DATA_HOLDING[type_name] in reason for reason in rated.risk_reasons)

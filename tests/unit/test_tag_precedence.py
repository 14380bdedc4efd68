"""A tag set both in a resource's properties and in its ``tags``: the ``tags`` value wins, everywhere.

Validation checks the document execution sends (one ``domain.tags.with_tags`` builds both), so a
value the plan accepted is the value AWS receives, and a value AWS would receive is the one judged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra_mcp.domain.plan import PlanStatus
from infra_mcp.domain.tags import with_tags
from infra_mcp.errors import InfraError
from tests.fakes.cloud_control import World


def _vpc(tags_in_properties: list[dict[str, Any]], tags: dict[str, str]) -> dict[str, Any]:
    return {
        "name": "net",
        "type": "AWS::EC2::VPC",
        "properties": {"CidrBlock": "10.0.0.0/16", "Tags": tags_in_properties},
        "tags": tags,
    }


class _ListTags:
    tag_property = "Tags"
    tags_are_list = True


class _MapTags:
    tag_property = "Tags"
    tags_are_list = False


def test_the_tags_map_wins_over_the_same_key_in_properties_in_either_format() -> None:
    listed = with_tags(
        {"Tags": [{"Key": "Env", "Value": "prod"}, {"Key": "Team", "Value": "a"}]}, {"Env": "dev"}, _ListTags()
    )
    assert listed["Tags"] == [{"Key": "Env", "Value": "dev"}, {"Key": "Team", "Value": "a"}]
    mapped = with_tags({"Tags": {"Env": "prod", "Team": "a"}}, {"Env": "dev"}, _MapTags())
    assert mapped["Tags"] == {"Env": "dev", "Team": "a"}


async def test_execution_sends_the_tags_value_and_validation_judges_that_value_not_the_overridden_one(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    # The properties' Env is not a string (schema error), but the tags map replaces it: nothing to flag.
    done = await world.apply([_vpc([{"Key": "Env", "Value": 5}, {"Key": "Team", "Value": "net"}], {"Env": "dev"})])
    assert done.status is PlanStatus.EXECUTED
    [sent] = world.cloud.resources.values()
    assert {t["Key"]: t["Value"] for t in sent["Tags"]} == {"Env": "dev", "Team": "net"}


async def test_a_bad_tag_value_that_execution_would_send_is_refused_at_planning(tmp_path: Path) -> None:
    world = World(tmp_path)
    with pytest.raises(InfraError) as caught:
        await world.plan([_vpc([{"Key": "Env", "Value": "prod"}, {"Key": "Team", "Value": 5}], {"Env": "dev"})])
    assert caught.value.code == "VALIDATION_001"
    assert [f["path"] for f in caught.value.details["findings"]] == ["/properties/Tags/1/Value"]
    assert world.cloud.calls == []

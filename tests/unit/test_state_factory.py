"""Choosing a project's state store from its state location."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra_mcp.domain.project import Member, Project, ProjectSettings, Role
from infra_mcp.errors import ValidationFailed
from infra_mcp.settings import Settings
from infra_mcp.stores.state_factory import S3Location, StateStoreRegistry, parse_location
from infra_mcp.stores.state_local import LocalStateStore
from infra_mcp.stores.state_s3 import S3Blobs, S3StateStore


def project(project_id: str = "web-app", state_location: str | None = None) -> Project:
    return Project(
        id=project_id,
        name=project_id,
        owner="alice",
        members=[Member(user="alice", role=Role.OWNER)],
        settings=ProjectSettings(state_location=state_location),
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, aws_region="eu-west-1")


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("s3://my-bucket/team/state", S3Location("my-bucket", "team/state")),
        ("s3://my-bucket/team/state/", S3Location("my-bucket", "team/state")),
        ("s3://my-bucket", S3Location("my-bucket", "")),
        ("S3://my.bucket-1/x", S3Location("my.bucket-1", "x")),
        ("/var/lib/infra-mcp/state", Path("/var/lib/infra-mcp/state")),
    ],
)
def test_a_location_is_an_s3_url_or_a_folder(location: str, expected: object) -> None:
    assert parse_location(location) == expected


def test_a_folder_location_is_expanded_and_made_absolute() -> None:
    assert parse_location("~/state") == Path.home() / "state"
    assert parse_location("relative/state") == Path.cwd() / "relative" / "state"


@pytest.mark.parametrize(
    "location",
    [
        "",
        "   ",
        "s3://",
        "s3:///prefix-without-bucket",
        "ftp://x",
        "https://bucket.s3.amazonaws.com/x",
        "s3://UpperCase/x",
        "s3://ab/x",
        "s3://bucket/../escape",
        "s3://bucket/a//b",
        "s3://bucket/x?versionId=1",
        "/tmp/state\x00evil",
        "s3://bucket/x\n",
    ],
)
def test_garbage_locations_are_refused(location: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        parse_location(location)
    assert refused.value.code == "VALIDATION_001"


def test_a_project_without_override_uses_the_default_local_folder(settings: Settings, tmp_path: Path) -> None:
    store = StateStoreRegistry(settings).for_project(project()).inner
    assert isinstance(store, LocalStateStore)
    assert store.root == tmp_path / "state"


def test_a_project_override_wins_over_the_default(settings: Settings, tmp_path: Path) -> None:
    registry = StateStoreRegistry(Settings(data_dir=tmp_path, allowed_state_locations=[str(tmp_path / "elsewhere")]))
    store = registry.for_project(project(state_location=str(tmp_path / "elsewhere"))).inner
    assert isinstance(store, LocalStateStore)
    assert store.root == tmp_path / "elsewhere"


def test_an_s3_location_gets_an_s3_store_with_the_settings_region(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, aws_region="eu-west-1", allowed_state_locations=["s3://team-state"])
    store = StateStoreRegistry(settings).for_project(project(state_location="s3://team-state/infra")).inner
    assert isinstance(store, S3StateStore)
    assert (store.bucket, store.prefix) == ("team-state", "infra")
    assert isinstance(store.backend, S3Blobs)
    assert store.backend.region == "eu-west-1"


def test_the_default_location_can_be_s3(tmp_path: Path) -> None:
    registry = StateStoreRegistry(Settings(data_dir=tmp_path, state_location="s3://team-state"))
    assert isinstance(registry.for_project(project()).inner, S3StateStore)


def test_one_store_is_shared_by_every_project_of_a_location(tmp_path: Path) -> None:
    registry = StateStoreRegistry(Settings(data_dir=tmp_path, allowed_state_locations=["s3://team-state"]))
    s3 = "s3://team-state/infra"

    def inner(p: Project) -> object:
        return registry.for_project(p).inner

    assert inner(project("a")) is inner(project("b"))
    assert inner(project("a", s3)) is inner(project("b", s3 + "/"))
    assert inner(project("a", s3)) is not inner(project("a", "s3://team-state/other"))


def test_a_malformed_project_override_is_a_validation_error(settings: Settings) -> None:
    with pytest.raises(ValidationFailed):
        StateStoreRegistry(settings).for_project(project(state_location="s3://"))

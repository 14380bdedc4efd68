"""Which state locations a project may use: the pure rules, and the store factory that applies them."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from infra_mcp.domain.locations import S3Location, is_within, require_allowed
from infra_mcp.domain.project import Member, Project, ProjectSettings, Role
from infra_mcp.errors import ValidationFailed
from infra_mcp.settings import Settings
from infra_mcp.stores.state_factory import StateStoreRegistry
from infra_mcp.stores.state_local import LocalStateStore


def project(state_location: str | None = None) -> Project:
    return Project(
        id="backups",
        name="backups",
        owner="alice",
        members=[Member(user="alice", role=Role.OWNER)],
        settings=ProjectSettings(state_location=state_location),
    )


@pytest.mark.parametrize(
    ("candidate", "root"),
    [
        (S3Location("team", "infra"), S3Location("team", "infra")),
        (S3Location("team", "infra/dev"), S3Location("team", "infra")),
        (S3Location("team", "anything"), S3Location("team", "")),
        (PurePosixPath("/srv/state"), PurePosixPath("/srv/state")),
        (PurePosixPath("/srv/state/team"), PurePosixPath("/srv/state")),
    ],
)
def test_a_location_at_or_under_an_allowed_root_is_within_it(candidate: S3Location, root: S3Location) -> None:
    assert is_within(candidate, root)


@pytest.mark.parametrize(
    ("candidate", "root"),
    [
        (S3Location("team", "infra-evil"), S3Location("team", "infra")),
        (S3Location("team", "infra/../audit"), S3Location("team", "infra")),
        (S3Location("prod-audit-logs", ""), S3Location("team", "")),
        (S3Location("team", ""), S3Location("team", "infra")),
        (PurePosixPath("/srv/state-other"), PurePosixPath("/srv/state")),
        (PurePosixPath("/srv/state/../etc"), PurePosixPath("/srv/state")),
        (PurePosixPath("/srv"), PurePosixPath("/srv/state")),
        (PurePosixPath("relative/state"), PurePosixPath("relative")),
        (S3Location("srv", "state"), PurePosixPath("/srv/state")),
        (PurePosixPath("/srv/state"), S3Location("srv", "state")),
    ],
)
def test_a_sibling_a_parent_another_bucket_or_an_unresolved_dotdot_is_not_within(
    candidate: S3Location, root: S3Location
) -> None:
    assert not is_within(candidate, root)


def test_a_location_outside_every_allowed_root_is_validation_001_naming_the_allowed_ones() -> None:
    with pytest.raises(ValidationFailed) as refused:
        require_allowed(S3Location("prod-audit-logs", ""), [PurePosixPath("/srv/state")], shown="s3://prod-audit-logs")
    assert refused.value.code == "VALIDATION_001"
    assert refused.value.details["allowed"] == ["/srv/state"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        allowed_state_locations=[str(tmp_path / "team-state"), "s3://team-bucket/infra"],
    )


@pytest.mark.parametrize(
    "location",
    [
        "s3://prod-audit-logs",
        "s3://team-bucket",
        "s3://team-bucket/infra-evil",
        "s3://team-bucket/other/infra",
        "/",
        "/etc",
        "{tmp}",
        "{tmp}/data",
        "{tmp}/team-state/../data",
        "{tmp}/team-state-evil",
    ],
)
def test_a_project_may_not_use_a_location_the_operator_did_not_allow(
    settings: Settings, tmp_path: Path, location: str
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        StateStoreRegistry(settings).for_project(project(location.format(tmp=tmp_path)))
    assert refused.value.code == "VALIDATION_001"


@pytest.mark.parametrize(
    "location",
    [
        None,
        "{tmp}/data/state",
        "{tmp}/data/state/sub",
        "{tmp}/team-state",
        "{tmp}/team-state/dev",
        "{tmp}/team-state/dev/../prod",
        "s3://team-bucket/infra",
        "s3://team-bucket/infra/dev",
    ],
)
def test_the_default_location_and_what_the_operator_allows_are_usable(
    settings: Settings, tmp_path: Path, location: str | None
) -> None:
    chosen = location.format(tmp=tmp_path) if location else None
    assert StateStoreRegistry(settings).for_project(project(chosen)) is not None


def test_a_symlink_inside_an_allowed_folder_cannot_lead_out_of_it(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "team-state").mkdir()
    (tmp_path / "precious").mkdir()
    (tmp_path / "team-state" / "escape").symlink_to(tmp_path / "precious")

    with pytest.raises(ValidationFailed) as refused:
        StateStoreRegistry(settings).for_project(project(str(tmp_path / "team-state" / "escape")))
    assert refused.value.code == "VALIDATION_001"
    assert refused.value.details["resolved"] == str(tmp_path / "precious")


def test_a_folder_location_is_used_resolved(settings: Settings, tmp_path: Path) -> None:
    store = StateStoreRegistry(settings).for_project(project(f"{tmp_path}/team-state/a/../b")).inner
    assert isinstance(store, LocalStateStore)
    assert store.root == tmp_path / "team-state" / "b"


def test_a_location_is_checked_again_when_the_operator_narrows_the_list(tmp_path: Path) -> None:
    stored = project(str(tmp_path / "team-state"))  # accepted once, still in the database
    narrowed = StateStoreRegistry(Settings(data_dir=tmp_path / "data"))

    with pytest.raises(ValidationFailed) as refused:
        narrowed.for_project(stored)
    assert refused.value.code == "VALIDATION_001"


def test_a_malformed_allowed_location_stops_the_server_from_starting(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed):
        StateStoreRegistry(Settings(data_dir=tmp_path, allowed_state_locations=["ftp://nope"]))

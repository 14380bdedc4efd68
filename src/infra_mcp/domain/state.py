"""The state file (DESIGN §3): what exists, as last recorded, with serial, lineage and checksum."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from infra_mcp.domain.common import sha256_of, utcnow
from infra_mcp.errors import AlreadyExists

STATE_FORMAT_VERSION = "1.0.0"


class ResourceStatus(StrEnum):
    ACTIVE = "active"
    FAILED = "failed"  # a create/update failed; it may exist in a broken state
    PENDING = "pending"  # a mutation is in flight (journaled request token)
    DELETING = "deleting"  # deletion requested, not yet confirmed


class StateResource(BaseModel):
    """One resource as it exists. ``properties`` is what AWS reports (write-only values removed);
    ``declared`` is what the user declared when it was last applied (write-only values as digests),
    the baseline the planner diffs a new desired state against."""

    model_config = ConfigDict(populate_by_name=True)

    id: str | None = Field(default=None, description="Physical id (Cloud Control primary identifier).")
    name: str = Field(description="Logical name, unique in the project.")
    type: str = Field(description="CloudFormation type name, e.g. AWS::EC2::VPC.")
    arn: str | None = None
    region: str = "us-east-1"
    properties: dict[str, Any] = Field(default_factory=dict)
    declared: dict[str, Any] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list, alias="dependsOn")
    status: ResourceStatus = ResourceStatus.ACTIVE
    created_at: datetime | None = Field(default=None, alias="createdAt")
    updated_at: datetime | None = Field(default=None, alias="updatedAt")
    deletion_policy: str | None = Field(
        default=None, alias="deletionPolicy", description="DeletionPolicy declared by a template (Retain, Snapshot)."
    )


# The description of a checkpoint version, followed by the plan id.
CHECKPOINT_PREFIX = "Checkpoint of plan "


class StateMetadata(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    last_modified_by: str = Field(default="", alias="lastModifiedBy")
    change_description: str = Field(default="", alias="changeDescription")
    change_plan_id: str | None = Field(default=None, alias="changePlanId")
    checksum: str = ""
    checkpoint: bool = Field(
        default=False, description="An intermediate version written while a plan executed (not its final one)."
    )
    incarnation: str | None = Field(
        default=None, description="The project incarnation that wrote this version (None: written before incarnations)."
    )
    forgotten: list[str] = Field(
        default_factory=list,
        description="Resources this version dropped from the record on purpose (restore_state forget_resources).",
    )


class StateFile(BaseModel):
    """The whole state document, serialised with the camelCase keys of DESIGN §3."""

    model_config = ConfigDict(populate_by_name=True)

    version: str = STATE_FORMAT_VERSION
    project_id: str = Field(alias="projectId")
    serial: int = Field(ge=0)
    lineage: str
    timestamp: datetime = Field(default_factory=utcnow)
    metadata: StateMetadata = Field(default_factory=StateMetadata)
    resources: list[StateResource] = Field(default_factory=list)
    outputs: dict[str, Any] | None = Field(
        default=None,
        description="The Outputs of the template this state was applied from, resolved (NoEcho-derived values "
        "masked); {} once a plan without Outputs replaced it; None in states written before outputs were kept.",
    )

    @classmethod
    def empty(cls, project_id: str) -> StateFile:
        """The state of a project that has never been written: serial 0, fresh lineage."""
        state = cls(project_id=project_id, serial=0, lineage=str(uuid.uuid4()))
        state.metadata.checksum = state.compute_checksum()
        return state

    def compute_checksum(self) -> str:
        return state_checksum(self.resources, self.outputs)

    def checksum_ok(self) -> bool:
        return self.metadata.checksum == self.compute_checksum()

    def to_document(self) -> dict[str, Any]:
        document = self.model_dump(mode="json", by_alias=True)
        for resource in document["resources"]:
            # As resources_checksum dumps them: a field added later is absent while unset.
            if resource.get("deletionPolicy", "") is None:
                del resource["deletionPolicy"]
        if document.get("outputs", "") is None:
            del document["outputs"]  # as older states were written, so older readers see the same document
        return document

    def resource(self, name: str) -> StateResource | None:
        return next((r for r in self.resources if r.name == name), None)

    def next_version(
        self,
        resources: list[StateResource],
        *,
        user: str,
        description: str,
        plan_id: str | None = None,
        outputs: dict[str, Any] | None = None,
    ) -> StateFile:
        """The version that follows this one: serial + 1, same lineage, fresh checksum, the ``outputs`` given."""
        return StateFile(
            project_id=self.project_id,
            serial=self.serial + 1,
            lineage=self.lineage,
            timestamp=utcnow(),
            metadata=StateMetadata(
                last_modified_by=user,
                change_description=description,
                change_plan_id=plan_id,
                checksum=state_checksum(resources, outputs),
            ),
            resources=resources,
            outputs=outputs,
        )


def resources_checksum(resources: list[StateResource]) -> str:
    # A field added later is left out while unset, so states written before it keep their checksums.
    return sha256_of([r.model_dump(mode="json", by_alias=True, exclude=_unset_later(r)) for r in resources])


def state_checksum(resources: list[StateResource], outputs: dict[str, Any] | None) -> str:
    """The checksum of a state: over its resources, and its outputs once it has any (None: as before outputs)."""
    if outputs is None:
        return resources_checksum(resources)
    dumped = [r.model_dump(mode="json", by_alias=True, exclude=_unset_later(r)) for r in resources]
    return sha256_of({"resources": dumped, "outputs": outputs})


def document_checksum(document: dict[str, Any]) -> str:
    """:func:`state_checksum` over a stored document (:meth:`StateFile.to_document`), without re-parsing it."""
    if document.get("outputs") is None:
        return sha256_of(document["resources"])
    return sha256_of({"resources": document["resources"], "outputs": document["outputs"]})


def _unset_later(resource: StateResource) -> set[str] | None:
    return {"deletion_policy"} if resource.deletion_policy is None else None


class HistoryEntry(BaseModel):
    """One version in a project's state history (a summary, not the whole document)."""

    serial: int
    timestamp: datetime
    last_modified_by: str
    change_description: str
    change_plan_id: str | None
    checksum: str
    resource_count: int
    valid: bool = Field(default=True, description="False if this history file fails to parse or verify.")
    checkpoint: bool = Field(default=False, description="Written while a plan executed, before its final version.")
    incarnation: str | None = Field(default=None, description="The project incarnation that wrote this version.")


class LockInfo(BaseModel):
    """A lease lock on a project's state."""

    lock_id: str
    owner: str
    operation: str
    acquired_at: datetime
    expires_at: datetime
    etag: str | None = Field(default=None, exclude=True)


class JournalEntry(BaseModel):
    """An in-flight Cloud Control request, written before we wait on it, removed once recorded."""

    plan_id: str
    name: str
    type: str
    region: str
    operation: str  # CREATE | UPDATE | DELETE
    request_token: str | None = None
    client_token: str
    physical_id: str | None = None
    started_at: datetime = Field(default_factory=utcnow)


class Journal(BaseModel):
    project_id: str
    incarnation: str | None = None
    entries: list[JournalEntry] = Field(default_factory=list)


class StateOwner(BaseModel):
    """Whose state a project may read and write: its own incarnation (DESIGN §3).

    ``adopts_unmarked`` is true only for a project that existed before incarnations were recorded:
    it owns the versions written without one.
    """

    model_config = ConfigDict(frozen=True)

    project_id: str
    incarnation: str
    adopts_unmarked: bool = False

    def owns(self, incarnation: str | None) -> bool:
        return incarnation == self.incarnation or (incarnation is None and self.adopts_unmarked)

    def require(self, state: StateFile, *, what: str = "state") -> StateFile:
        """Return ``state`` if this incarnation owns it.

        Raises:
            AlreadyExists: CONFLICT_001 saying what is there (serial, resources, lineage, incarnation).
        """
        if self.owns(state.metadata.incarnation):
            return state
        raise foreign_state(self, state, what=what)


def foreign_state(owner: StateOwner, state: StateFile, *, what: str = "state") -> AlreadyExists:
    """CONFLICT_001 for state at this project's keys that another incarnation wrote."""
    other = state.metadata.incarnation or "none (written before incarnations were recorded)"
    return AlreadyExists(
        f"The {what} at project {owner.project_id!r}'s state location was written by another incarnation of "
        f"this project id ({other}): serial {state.serial}, {len(state.resources)} resources, lineage "
        f"{state.lineage}. This project ({owner.incarnation}) will not read or adopt it. Use another project id "
        "or state_location; to take over those resources, import them (explicit and audited), never by reuse.",
        details={
            "project_id": owner.project_id,
            "incarnation": owner.incarnation,
            "found": {
                "serial": state.serial,
                "resource_count": len(state.resources),
                "lineage": state.lineage,
                "incarnation": state.metadata.incarnation,
            },
        },
    )


def _identity(resource: StateResource) -> tuple[str, str]:
    # A physical resource is its type and primary identifier; one not created yet is only its name.
    return (resource.type, resource.id) if resource.id else ("", resource.name)


def dropped_resources(current: list[StateResource], target: list[StateResource]) -> list[StateResource]:
    """Resources of ``current`` that ``target`` does not hold (same type and physical id, or same name)."""
    kept = {_identity(r) for r in target}
    return [r for r in current if _identity(r) not in kept]


def possibly_live(versions: list[StateFile]) -> list[StateResource]:
    """Resources that left the record without a plan deleting them, and never came back.

    ``versions`` is the history, oldest first. A version written by a plan execution
    (``change_plan_id``) removes what it removes because AWS confirmed the deletion; any other
    version that drops a resource (a restore of an older version, a hand edit) may have left it
    running, unless it names it in ``metadata.forgotten`` (forgetting on purpose).
    """
    suspects: dict[tuple[str, str], StateResource] = {}
    previous: list[StateResource] = []
    for version in versions:
        if version.metadata.change_plan_id is None:
            for resource in dropped_resources(previous, version.resources):
                if resource.name not in version.metadata.forgotten:
                    suspects[_identity(resource)] = resource
        for resource in version.resources:
            suspects.pop(_identity(resource), None)  # recorded again: later versions speak for it
        previous = version.resources
    return list(suspects.values())


class DataDeletion(BaseModel):
    """What deleting a project's state data did: keys removed, and keys left alone with why."""

    deleted: list[str] = Field(default_factory=list)
    left: dict[str, str] = Field(default_factory=dict, description="key -> why it was not deleted")

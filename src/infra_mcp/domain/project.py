"""Projects, members, roles and what each role may do."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from infra_mcp.domain.common import utcnow, validate_project_id
from infra_mcp.domain.state import StateOwner
from infra_mcp.errors import AccessDenied, NotFound, ValidationFailed


class Role(StrEnum):
    OWNER = "owner"
    APPROVER = "approver"
    EDITOR = "editor"
    VIEWER = "viewer"


class Permission(StrEnum):
    READ = "read"  # see the project, its state, plans, history, audit
    PLAN = "plan"  # make plans
    EXECUTE = "execute"  # execute an approved plan
    APPROVE = "approve"  # approve or reject plans
    MANAGE = "manage"  # change settings and members, restore state
    DELETE = "delete"  # delete the project


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.READ}),
    Role.EDITOR: frozenset({Permission.READ, Permission.PLAN, Permission.EXECUTE}),
    Role.APPROVER: frozenset({Permission.READ, Permission.PLAN, Permission.EXECUTE, Permission.APPROVE}),
    Role.OWNER: frozenset(Permission),
}

UserName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]

# Audit actors that are infra-mcp itself (approval_rules.RULE_APPROVER "rule:auto-approval",
# reconciliation "infra-mcp:reconcile"). A user holding such a name could pass their acts off as the
# server's, and the audit's refusal gate always records internal actors.
RESERVED_USER_PREFIXES = ("rule:", "infra-mcp:", "system:")


def require_assignable_user(user: str, *, field: str = "user") -> str:
    """Return ``user`` unless it is an internal actor name (``rule:...``, ``infra-mcp:...``, ``system:...``).

    Raises:
        ValidationFailed: VALIDATION_001 for a reserved name.
    """
    if user.strip().lower().startswith(RESERVED_USER_PREFIXES):
        raise ValidationFailed(
            f"User name {user[:80]!r} is reserved: names starting with {', '.join(RESERVED_USER_PREFIXES)} "
            "are infra-mcp's own actors in the audit log. Use another name.",
            details={"field": field, "reserved_prefixes": list(RESERVED_USER_PREFIXES)},
        )
    return user


class ProjectHidden(NotFound):
    """A project the user is no member of: answered exactly like one that does not exist.

    A distinct class so that callers who looked a plan up can answer "no such plan" instead.
    """


def no_such_project(project_id: str) -> NotFound:
    """The one answer for a project that is missing or that the caller is no member of."""
    return NotFound(
        f"No project {project_id!r}. Use list_projects to see the projects you belong to.",
        details={"project_id": project_id},
    )


class Member(BaseModel):
    model_config = ConfigDict(frozen=True)

    user: UserName = Field(description="User name (on stdio: the OS user or INFRA_MCP_USER).")
    role: Role = Field(description="owner | approver | editor | viewer")


class RiskCeiling(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class AutoApprovalRule(BaseModel):
    """A plan that fits every limit here is approved by rule when it is made."""

    model_config = ConfigDict(frozen=True)

    max_risk: RiskCeiling = Field(default=RiskCeiling.LOW, description="Highest plan risk approved by rule.")
    max_cost_delta_usd: float = Field(default=5.0, ge=0, description="Highest monthly cost increase (USD).")
    actions: list[str] = Field(
        default_factory=lambda: ["create", "update"],
        description="Actions a plan may contain (no-op is always allowed).",
    )

    @field_validator("actions")
    @classmethod
    def _known_actions(cls, value: list[str]) -> list[str]:
        allowed = {"create", "update", "replace", "delete", "import"}
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise ValueError(f"unknown action(s) {unknown}; allowed: {sorted(allowed)}")
        return value


class ApprovalSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    require_human_confirmation: bool = Field(
        default=True, description="Ask a human (elicitation or `infra-mcp plans approve`) before approving."
    )
    allow_self_approval: bool = Field(default=True, description="May a plan's author approve it?")
    approval_ttl_minutes: int = Field(default=60, ge=1, le=10080, description="How long an approval stays valid.")
    auto_approval: AutoApprovalRule | None = Field(default=None, description="Approve low-impact plans by rule.")


class ProjectSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    state_location: str | None = Field(
        default=None, description="Override of the state location: folder path or s3://bucket/prefix."
    )
    # [0-9], not \d: \d matches any Unicode digit, and "us-east-١" is no region.
    default_region: str = Field(default="us-east-1", pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]+$")
    approval: ApprovalSettings = Field(default_factory=ApprovalSettings)


class Project(BaseModel):
    """A project: a set of AWS resources managed together, with members and settings."""

    model_config = ConfigDict(frozen=True)

    id: str
    incarnation: str = Field(
        default_factory=lambda: str(uuid.uuid4()),
        min_length=1,
        max_length=64,
        description="Fixed at creation: a re-created project id is another incarnation with its own state and audit.",
    )
    adopts_unmarked_state: bool = Field(
        default=False,
        description="True only for projects that existed before incarnations: they own state and audit without one.",
    )
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)
    owner: UserName
    members: list[Member] = Field(default_factory=list)
    settings: ProjectSettings = Field(default_factory=ProjectSettings)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        return validate_project_id(value)

    @model_validator(mode="after")
    def _owner_is_member(self) -> Project:
        users = [m.user for m in self.members]
        if len(users) != len(set(users)):
            raise ValueError("a user appears more than once in members")
        if not any(m.user == self.owner and m.role is Role.OWNER for m in self.members):
            raise ValueError(f"the owner {self.owner!r} must be a member with role 'owner'")
        return self

    @property
    def state_owner(self) -> StateOwner:
        return StateOwner(project_id=self.id, incarnation=self.incarnation, adopts_unmarked=self.adopts_unmarked_state)

    def role_of(self, user: str) -> Role | None:
        return next((m.role for m in self.members if m.user == user), None)

    def can(self, user: str, permission: Permission) -> bool:
        role = self.role_of(user)
        return role is not None and permission in ROLE_PERMISSIONS[role]

    def require(self, user: str, permission: Permission) -> Role:
        """Return the user's role if it grants ``permission``.

        Raises:
            AccessDenied: naming the role held and the roles that would do (members only).
            ProjectHidden: RESOURCE_001 for a non-member, worded like a missing project.
        """
        role = self.role_of(user)
        if role is not None and permission in ROLE_PERMISSIONS[role]:
            return role
        if role is None:
            # AUTH_001 here would tell a non-member the project exists (a missing one is RESOURCE_001).
            hidden = no_such_project(self.id)
            raise ProjectHidden(hidden.message, details=hidden.details)
        needed = sorted(r.value for r, perms in ROLE_PERMISSIONS.items() if permission in perms)
        held = role.value if role else "no role"
        raise AccessDenied(
            f"User {user!r} has {held} in project {self.id!r}; '{permission.value}' needs one of {needed}. "
            "Ask a project owner to change your role with update_project.",
            details={"project_id": self.id, "user": user, "role": role, "permission": permission.value},
        )

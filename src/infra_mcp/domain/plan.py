"""Change plans (DESIGN §4): the shared model that planning, approval and execution agree on.

The planner (``domain/planner``) builds :class:`Plan` objects; the SQLite store persists them
as JSON; approval binds to :attr:`Plan.fingerprint`; execution walks
each change's approved ``depends_on`` (layered into :attr:`Plan.execution_order`). Only this module
defines their shape.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from infra_mcp.domain.common import sha256_of, utcnow
from infra_mcp.errors import NotFound, PlanStatusInvalid

KNOWN_AFTER_APPLY = "(known after apply)"
SENSITIVE = "(sensitive value)"


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"
    NOOP = "no-op"
    IMPORT = "import"


class RiskLevel(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return {"low": 0, "medium": 1, "high": 2}[self.value]


class PlanStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXECUTING = "executing"
    EXECUTED = "executed"
    FAILED = "failed"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"


TERMINAL_STATUSES = frozenset(
    {PlanStatus.REJECTED, PlanStatus.EXECUTED, PlanStatus.FAILED, PlanStatus.EXPIRED, PlanStatus.SUPERSEDED}
)

# Why a plan in a terminal status can never be approved or executed again, in words.
WHY_FINAL = {
    PlanStatus.REJECTED: "was rejected",
    PlanStatus.EXPIRED: "has an expired approval",
    PlanStatus.EXECUTED: "was already executed",
    PlanStatus.FAILED: "already ran and failed",
    PlanStatus.SUPERSEDED: "was superseded by a newer state",
}

# The plan's lifecycle: every status a plan may move to from each status. Nothing else moves it.
MOVES: dict[PlanStatus, frozenset[PlanStatus]] = {
    PlanStatus.PENDING: frozenset({PlanStatus.APPROVED, PlanStatus.REJECTED, PlanStatus.SUPERSEDED}),
    PlanStatus.APPROVED: frozenset(
        {PlanStatus.EXECUTING, PlanStatus.REJECTED, PlanStatus.EXPIRED, PlanStatus.SUPERSEDED}
    ),
    PlanStatus.EXECUTING: frozenset({PlanStatus.EXECUTED, PlanStatus.FAILED}),
    # A reconciliation that settles the requests left in doubt may find every change succeeded.
    PlanStatus.FAILED: frozenset({PlanStatus.EXECUTED}),
}


# A property holds any JSON value. Said as a real type: an empty schema (``Any``) makes clients such as
# the MCP Inspector warn about every occurrence.
PropertyValue = Annotated[
    Any,
    WithJsonSchema(
        {
            "type": ["string", "number", "integer", "boolean", "object", "array", "null"],
            "description": "Any JSON value.",
        }
    ),
]


class PropertyChange(BaseModel):
    """One property's before/after. Sensitive values are replaced by :data:`SENSITIVE`."""

    path: str = Field(description="JSON-pointer-like path, e.g. /Tags/Environment or /CidrBlock.")
    before: PropertyValue = None
    after: PropertyValue = None
    requires_replacement: bool = False
    known_after_apply: bool = False
    sensitive: bool = False


class ResourceSpec(BaseModel):
    """A desired resource as declared, with references left as ``{"Ref": ...}`` / ``{"Fn::GetAtt": ...}``.

    Write-only (secret) values are kept sealed: ``properties`` holds
    ``{"__sealed__": "<token>"}`` in their place (see ``services/secrets``), never clear text.
    """

    name: str
    type: str
    region: str = "us-east-1"
    properties: dict[str, Any] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)
    deletion_policy: Literal["Retain", "RetainExceptOnCreate", "Snapshot"] | None = Field(
        default=None, description="A template's DeletionPolicy, when not Delete."
    )
    replace_policy: Literal["Retain", "Snapshot"] | None = Field(
        default=None,
        description="A template's UpdateReplacePolicy, when not Delete: what a replacement does to the old one.",
    )


class Change(BaseModel):
    name: str
    type: str
    action: Action
    previous_type: str | None = Field(
        default=None, description="The existing resource's type when a replacement changes the type."
    )
    region: str = "us-east-1"
    physical_id: str | None = Field(default=None, description="Existing physical id (update/replace/delete).")
    property_changes: list[PropertyChange] = Field(default_factory=list)
    replacement_reasons: list[str] = Field(
        default_factory=list, description="Create-only properties whose change forces replacement."
    )
    replacement_strategy: Literal["create_before_delete", "delete_before_create"] | None = None
    interruptions: list[str] = Field(
        default_factory=list,
        description="What an in-place update interrupts, e.g. 'InstanceType: the instance is stopped and started'.",
    )
    retained: bool = Field(
        default=False,
        description="Under DeletionPolicy Retain (a deletion) or UpdateReplacePolicy Retain (a replacement's old "
        "resource): left in place in AWS and dropped from state, not deleted.",
    )
    snapshot: Literal["final_snapshot", "snapshot_first", "not_taken"] | None = Field(
        default=None,
        description="Under a Snapshot policy, what the deletion (or a replacement's delete of the old one) keeps: "
        "final_snapshot (the delete takes one), snapshot_first (infra-mcp creates a snapshot resource first), "
        "not_taken (none can be).",
    )
    record_only: bool = Field(
        default=False,
        description="Accepting drift: only the record changes (live values become the declared ones); nothing is "
        "sent to AWS.",
    )
    live_values: dict[str, PropertyValue] | None = Field(
        default=None,
        description="Planned against the live resource (refresh): its live value per drifted path (null: gone "
        "live); execution patches from these.",
    )
    risk: RiskLevel = RiskLevel.LOW
    risk_reasons: list[str] = Field(default_factory=list)
    security_findings: list[str] = Field(
        default_factory=list, description="Security-relevant effects (public access, wildcards, protection off...)."
    )
    depends_on: list[str] = Field(default_factory=list, description="Logical names this change waits for.")
    desired: ResourceSpec | None = Field(default=None, description="What to create/update to (None for delete).")


class Finding(BaseModel):
    """A validation finding, located by resource name and property path."""

    severity: Literal["error", "warning", "info"] = "error"
    resource: str | None = None
    path: str = ""
    rule: str = Field(default="", description="Rule id, e.g. schema, ref, cycle, E3012 (cfn-lint).")
    message: str


class CostLine(BaseModel):
    name: str
    type: str
    monthly_before: float = 0.0
    monthly_after: float = 0.0
    unit_price: str = Field(default="", description="e.g. '0.0104 USD/hour (t3.micro, us-east-1)'.")
    source: str = Field(default="", description="e.g. 'bundled price table 2026-10-01' or 'AWS Price List API'.")


class Unpriced(BaseModel):
    name: str
    type: str
    reason: str = Field(description="e.g. 'usage-based: priced per GB stored and per request'.")


class CostEstimate(BaseModel):
    currency: str = "USD"
    monthly_before: float = 0.0
    monthly_after: float = 0.0
    monthly_delta: float = 0.0
    lines: list[CostLine] = Field(default_factory=list)
    unpriced: list[Unpriced] = Field(default_factory=list)
    source: str = ""


class PlanSummary(BaseModel):
    create: int = 0
    update: int = 0
    replace: int = 0
    delete: int = 0
    no_op: int = 0
    import_: int = Field(default=0, alias="import")
    text: str = Field(default="", description="e.g. 'Plan: 3 to add, 1 to change, 1 to replace, 2 to destroy.'")

    model_config = ConfigDict(populate_by_name=True)


class ApprovalMethod(StrEnum):
    ELICITATION = "elicitation"  # a human confirmed in the MCP client's prompt
    OUT_OF_BAND = "out_of_band"  # a human ran `infra-mcp plans approve`
    RULE = "rule"  # the project's auto-approval rule matched
    NO_CONFIRMATION = "no_confirmation"  # project opted out of human confirmation


class Approval(BaseModel):
    """Who approved which fingerprint, how and until when, sealed by the server key (``mac``).

    ``person_comment`` is what the person typed (in the prompt or at the terminal);
    ``agent_comment`` what the calling agent passed to ``approve_plan``. They are kept apart so a
    reader of the audit never mistakes the agent's words for the person's.
    """

    approved_by: str
    approved_at: datetime = Field(default_factory=utcnow)
    method: ApprovalMethod
    fingerprint: str
    agent_comment: str = ""
    person_comment: str = ""
    expires_at: datetime
    mac: str = Field(default="", description="Keyed MAC over the approval and the plan's fingerprint.")


class ApprovalRequest(BaseModel):
    """A pending plan waiting for a person to approve it out of band (in a terminal)."""

    method: Literal["out_of_band"] = "out_of_band"
    requested_at: datetime = Field(default_factory=utcnow)
    requested_by: str
    command: str = Field(description="The command the person runs, with the data directory the server uses.")


class Rejection(BaseModel):
    rejected_by: str
    rejected_at: datetime = Field(default_factory=utcnow)
    reason: str = ""


class ChangeOutcomeStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # not attempted because something it depends on failed


class ChangeOutcome(BaseModel):
    name: str
    action: Action
    status: ChangeOutcomeStatus = ChangeOutcomeStatus.PENDING
    physical_id: str | None = None
    request_token: str | None = None
    error_code: str | None = Field(default=None, description="AWS error code, e.g. InvalidRequest.")
    error_message: str | None = None
    in_doubt: bool = Field(
        default=False,
        description="No answer came: the request may have reached AWS. Its journal entry is kept, and the next "
        "execution of the project (or a server restart) reconciles it before anything else.",
    )
    started_at: datetime | None = None
    finished_at: datetime | None = None


class ExecutionRecord(BaseModel):
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    executed_by: str = ""
    outcomes: list[ChangeOutcome] = Field(default_factory=list)
    final_serial: int | None = None


class Plan(BaseModel):
    """A reviewable change plan. Content fields are covered by the fingerprint; lifecycle fields are not."""

    id: str = Field(description="plan-<hex>")
    project_id: str
    description: str = ""
    author: str
    created_at: datetime = Field(default_factory=utcnow)
    kind: Literal["full", "partial", "rollback"] = "full"
    status: PlanStatus = PlanStatus.PENDING

    # Content (fingerprinted).
    base_serial: int
    base_lineage: str | None
    changes: list[Change] = Field(default_factory=list)
    execution_order: list[list[str]] = Field(
        default_factory=list, description="Waves of logical names; each wave depends only on earlier ones."
    )
    summary: PlanSummary = Field(default_factory=PlanSummary)
    risk: RiskLevel = RiskLevel.LOW
    risk_reasons: list[str] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    cost: CostEstimate = Field(default_factory=CostEstimate)
    outputs: dict[str, Any] = Field(
        default_factory=dict,
        description="A template's Outputs as declared (references unresolved); read them, resolved, at "
        "infra://projects/{project_id}/outputs once executed.",
    )
    fingerprint: str = ""
    content_mac: str = Field(default="", description="Keyed MAC binding id, project and fingerprint.")

    # Lifecycle (not fingerprinted).
    approval_request: ApprovalRequest | None = None
    approval: Approval | None = None
    rejection: Rejection | None = None
    execution: ExecutionRecord | None = None

    def content(self) -> dict[str, Any]:
        """Everything the fingerprint covers: what would run, against which state."""
        return {
            "project_id": self.project_id,
            "base_serial": self.base_serial,
            "base_lineage": self.base_lineage,
            "changes": [_fingerprinted(c) for c in self.changes],
            "execution_order": self.execution_order,
        }

    def compute_fingerprint(self) -> str:
        return sha256_of(self.content())

    def with_fingerprint(self) -> Plan:
        return self.model_copy(update={"fingerprint": self.compute_fingerprint()})

    def change(self, name: str) -> Change | None:
        return next((c for c in self.changes if c.name == name), None)

    @property
    def actionable_changes(self) -> list[Change]:
        return [c for c in self.changes if c.action is not Action.NOOP]

    @property
    def has_changes(self) -> bool:
        """False for a "No changes" plan: nothing to approve, nothing to execute."""
        return any(c.action is not Action.NOOP for c in self.changes)

    # ---- the lifecycle: one method per transition; each refuses an illegal move (PLAN_003) ----------

    def approve(self, approval: Approval) -> Plan:
        """pending -> approved, bound to ``approval``."""
        return self._move(PlanStatus.APPROVED, approval=approval)

    def reject(self, rejection: Rejection) -> Plan:
        """pending | approved -> rejected, for good."""
        return self._move(PlanStatus.REJECTED, rejection=rejection)

    def expire(self) -> Plan:
        """approved -> expired: the approval's time ran out before it ran."""
        return self._move(PlanStatus.EXPIRED)

    def supersede(self) -> Plan:
        """pending | approved -> superseded: the state moved since the plan was made."""
        return self._move(PlanStatus.SUPERSEDED)

    def start(self, execution: ExecutionRecord) -> Plan:
        """approved -> executing, with the record the walk fills in."""
        return self._move(PlanStatus.EXECUTING, execution=execution)

    def finish(self, execution: ExecutionRecord) -> Plan:
        """executing -> executed if every change succeeded, else failed; failed -> executed likewise.

        The second move is a reconciliation that settled requests left in doubt and found that every
        change succeeded after all.
        """
        succeeded = all(o.status is ChangeOutcomeStatus.SUCCEEDED for o in execution.outcomes)
        return self._move(PlanStatus.EXECUTED if succeeded else PlanStatus.FAILED, execution=execution)

    def await_out_of_band(self, request: ApprovalRequest) -> Plan:
        """A pending plan now waits for a person's approval in a terminal (it stays pending)."""
        self._require(PlanStatus.PENDING, doing="wait for an out-of-band approval")
        return self.model_copy(update={"approval_request": request})

    def with_execution(self, execution: ExecutionRecord) -> Plan:
        """The same status with a newer execution record (outcomes while running, or reconciled later)."""
        self._require(PlanStatus.EXECUTING, PlanStatus.EXECUTED, PlanStatus.FAILED, doing="record outcomes")
        return self.model_copy(update={"execution": execution})

    def _move(self, to: PlanStatus, **update: Any) -> Plan:
        if to not in MOVES.get(self.status, frozenset()):
            raise self._refusal(f"move to {to.value}", to=to.value)
        return self.model_copy(update={"status": to, **update})

    def _require(self, *statuses: PlanStatus, doing: str) -> None:
        if self.status not in statuses:
            raise self._refusal(doing)

    def _refusal(self, doing: str, **details: str) -> PlanStatusInvalid:
        return PlanStatusInvalid(
            f"Plan {self.id} is {self.status.value}, so it cannot {doing}. Read it again with get_plan; make a "
            "new plan with plan_changes if it is final.",
            details={"plan_id": self.id, "status": self.status.value, **details},
        )


def _fingerprinted(change: Change) -> dict[str, Any]:
    """A change as the fingerprint covers it.

    Fields added after plans were first signed are left out while unset, so a plan stored before
    them keeps the fingerprint it was approved under.
    """
    data = change.model_dump(mode="json")
    if not data["interruptions"]:
        del data["interruptions"]
    if not data["retained"]:
        del data["retained"]
    if data["snapshot"] is None:
        del data["snapshot"]
    if not data["record_only"]:
        del data["record_only"]
    if data["live_values"] is None:
        del data["live_values"]
    desired = data.get("desired")
    for later in ("deletion_policy", "replace_policy"):
        if isinstance(desired, dict) and desired.get(later) is None:
            desired.pop(later, None)
    return data


def final_description(plan: Plan) -> str:
    """What the state version an execution ends with says: the plan's description and its summary.

    A person reading history sees one entry per executed plan, in the author's words and the facts.
    """
    summary = plan.summary.text or f"{len(plan.actionable_changes)} change(s)"
    if plan.description:
        return f"{plan.description} ({plan.id}: {summary})"
    return f"Executed plan {plan.id}: {summary}"


def no_such_plan(plan_id: str) -> NotFound:
    """The one answer for a plan that is missing or whose project the caller is no member of."""
    return NotFound(f"No plan {plan_id!r}. Use list_plans to see a project's plans.", details={"plan_id": plan_id})

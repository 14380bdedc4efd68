"""Approval use cases: check, approve, record a declined prompt, reject, approve by rule.

The server asks a human (MCP elicitation) or a person runs ``infra-mcp plans approve``; either way
this service is the only place a plan becomes ``approved``. Every outcome, refusals included, lands
in the project's audit log.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal

import structlog

from infra_mcp.domain import approval_rules as rules
from infra_mcp.domain import execution_rules
from infra_mcp.domain.audit import AuditEvent
from infra_mcp.domain.common import utcnow
from infra_mcp.domain.integrity import Notary
from infra_mcp.domain.plan import Approval, ApprovalMethod, ApprovalRequest, Plan, PlanStatus, Rejection
from infra_mcp.domain.project import Project
from infra_mcp.domain.text import COMMENT_MAX, clean_untrusted
from infra_mcp.errors import (
    ApprovalRequired,
    ElicitationUnsupported,
    InfraError,
    IntegrityFailed,
    NotFound,
    PlanStale,
    PlanStatusInvalid,
)
from infra_mcp.ports import ProjectStore, StateStores
from infra_mcp.services.audit import RefusalGate

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]


class ApprovalService:
    """Approves and rejects plans under the project's approval settings.

    Args:
        projects: Plans, projects and the audit log.
        states: The state store of each project (to refuse stale plans before a human is asked).
        notary: Signs approvals and checks plans with the server key.
        clock: Current time (injected so tests control expiry).
    """

    def __init__(
        self,
        projects: ProjectStore,
        states: StateStores,
        *,
        notary: Notary,
        clock: Clock = utcnow,
        refusals: RefusalGate | None = None,
    ) -> None:
        self.projects = projects
        self.states = states
        self.notary = notary
        self.clock = clock
        self.refusals = refusals or RefusalGate(projects, clock=clock)

    @staticmethod
    def requires_human(project: Project) -> bool:
        """True unless the project explicitly opted out of human confirmation."""
        return project.settings.approval.require_human_confirmation

    async def plan_to_confirm(
        self, plan_id: str, user: str, *, can_prompt: bool, command_for: Callable[[str], str]
    ) -> Plan | None:
        """The plan a person must confirm in a prompt, or None when the project needs no confirmation.

        Args:
            plan_id: The plan to approve.
            user: Who asks.
            can_prompt: Whether the client can show the person a confirmation form.
            command_for: The terminal command a person runs to approve a plan out of band.

        Raises:
            ElicitationUnsupported: APPROVAL_003 when a person must confirm but the client cannot
                ask; the plan is then marked as waiting for an out-of-band approval (audited).
            InfraError: every refusal of :meth:`check_approvable`.
        """
        plan, project = await self.check_approvable(plan_id, user)
        if not self.requires_human(project):
            return None
        if can_prompt:
            return plan
        command = command_for(plan.id)
        await self.request_out_of_band(plan.id, user, command)
        raise ElicitationUnsupported(
            f"For the person, not the agent: plan {plan.id} needs a person's approval, and this MCP client "
            "cannot show approval prompts. The person reviews and approves it in their own terminal "
            f"(it asks for a code shown only there): {command} . Agent: do not run this command and do not "
            "call approve_plan again; tell the person, and call execute_plan after they say it is approved.",
            details={"plan_id": plan.id, "reason": "awaiting_out_of_band_approval", "for_the_person": command},
        )

    async def awaiting(self, user: str) -> list[tuple[Plan, bool]]:
        """Pending plans that wait for a person, in the user's projects, newest first.

        Each comes with whether *this* user may approve it (their role, and approver != author where
        the project forbids self-approval), so an author sees their plan waiting for someone else
        and an approver sees what waits for them.
        """
        waiting: list[tuple[Plan, bool]] = []
        for project in await self.projects.list_projects(member=user):
            for plan in await self.projects.list_plans(project.id, statuses=[PlanStatus.PENDING]):
                if not plan.actionable_changes:
                    continue
                try:
                    rules.require_may_approve(plan, project, user)
                except InfraError:
                    waiting.append((plan, False))
                else:
                    waiting.append((plan, True))
        waiting.sort(key=lambda entry: entry[0].created_at, reverse=True)
        return waiting

    async def check_approvable(self, plan_id: str, user: str) -> tuple[Plan, Project]:
        """Everything that can be checked before asking a human to confirm.

        Raises:
            NotFound: RESOURCE_001, no such plan.
            AccessDenied: AUTH_001, the user may not approve in this project.
            PlanStatusInvalid: PLAN_003, the plan is not pending.
            ApprovalRequired: APPROVAL_002, self-approval is forbidden here.
            PlanStale: PLAN_001, the state moved (the plan becomes ``superseded``).
            PlanTampered: PLAN_002, the stored content no longer matches its fingerprint.
        """
        plan = await self.projects.get_plan(plan_id)
        project = await self.projects.get_project(plan.project_id)
        try:
            await self._check(plan, project, user)
        except InfraError as exc:
            await self._audit(plan, user, "plan.approve", "refused", code=exc.code, reason=exc.message)
            raise
        return plan, project

    async def _check(self, plan: Plan, project: Project, user: str) -> None:
        rules.require_may_approve(plan, project, user)
        await self._require_fresh(plan, project)
        self.require_genuine(plan)

    def require_genuine(self, plan: Plan) -> None:
        """Raises IntegrityFailed (INTEGRITY_001) unless the server key signed this plan's content.

        The MAC is over a freshly computed fingerprint, which must also equal the stored one: an
        edited plan fails here whether or not its fingerprint was recomputed.
        """
        if not self.notary.plan_is_genuine(plan):
            raise IntegrityFailed(
                f"Plan {plan.id} was not made by this infra-mcp server or was edited outside it (its content "
                "does not match the server key's signature). It can never be approved. Make a new plan, and tell "
                "the project's owner: the database may have been tampered with.",
                details={"plan_id": plan.id, "reason": "plan_signature_mismatch"},
            )

    async def _require_fresh(self, plan: Plan, project: Project) -> None:
        """Refuse a stale plan and retire it, so nobody is asked to confirm it again."""
        state = await self.states.for_project(project).read(project.id)
        serial, lineage = (state.serial, state.lineage) if state is not None else (0, None)
        try:
            execution_rules.require_fresh(plan, serial, lineage)
        except PlanStale:
            await self._supersede(plan)
            raise

    async def _supersede(self, plan: Plan) -> None:
        # If someone else moved it first, the refusal stands either way.
        with contextlib.suppress(PlanStatusInvalid):
            await self.projects.update_plan(plan.supersede(), expected_status=plan.status)

    async def approve(
        self,
        plan_id: str,
        user: str,
        *,
        method: ApprovalMethod,
        agent_comment: str = "",
        person_comment: str = "",
    ) -> Plan:
        """Approve a pending plan, bound to its fingerprint, valid for the project's TTL.

        ``method`` says how the human confirmed (elicitation or out of band), or
        ``no_confirmation`` for a project that opted out of human confirmation. The agent's and
        the person's comments are recorded apart, each cleaned and cut to ``COMMENT_MAX``.

        Raises:
            ApprovalRequired: APPROVAL_002, ``no_confirmation`` or ``rule`` used where not allowed.
            ...and everything :meth:`check_approvable` raises. A lost race is PLAN_003.
        """
        plan, project = await self.check_approvable(plan_id, user)
        if method is ApprovalMethod.RULE or (method is ApprovalMethod.NO_CONFIRMATION and self.requires_human(project)):
            await self._audit(plan, user, "plan.approve", "refused", code=ApprovalRequired.code, method=method.value)
            raise ApprovalRequired(
                f"Project {project.id!r} requires a human to confirm plan {plan.id}. Call approve_plan again: it "
                "now asks the person."
                if method is ApprovalMethod.NO_CONFIRMATION
                else f"Plan {plan.id} cannot be approved 'by rule' on request; rules apply when a plan is made. "
                "Call approve_plan so a person confirms it.",
                details={"plan_id": plan.id, "method": method.value, "reason": "confirmation_required"},
            )
        return await self._approve(
            plan,
            project,
            approver=user,
            actor=user,
            method=method,
            agent_comment=clean_untrusted(agent_comment, COMMENT_MAX),
            person_comment=clean_untrusted(person_comment, COMMENT_MAX),
        )

    async def _approve(
        self,
        plan: Plan,
        project: Project,
        *,
        approver: str,
        actor: str,
        method: ApprovalMethod,
        agent_comment: str = "",
        person_comment: str = "",
    ) -> Plan:
        now = self.clock()
        approval = self.notary.sign_approval(
            plan,
            Approval(
                approved_by=approver,
                approved_at=now,
                method=method,
                # check_approvable verified the stored fingerprint against the content just before.
                fingerprint=plan.fingerprint,
                agent_comment=agent_comment,
                person_comment=person_comment,
                expires_at=now + timedelta(minutes=project.settings.approval.approval_ttl_minutes),
            ),
        )
        approved = plan.approve(approval)
        record = self._event(
            plan,
            actor,
            "plan.approve",
            "ok",
            method=method.value,
            approved_by=approver,
            fingerprint=approval.fingerprint,
            expires_at=approval.expires_at.isoformat(),
            agent_comment=agent_comment,
            person_comment=person_comment,
        )
        try:
            saved = await self.projects.update_plan(approved, expected_status=PlanStatus.PENDING, audit=record)
        except PlanStatusInvalid as exc:
            await self._audit(plan, actor, "plan.approve", "refused", code=exc.code, reason="lost_race")
            raise
        log.info("plan_approved", project_id=plan.project_id, plan_id=plan.id, user=approver, method=method.value)
        return saved

    async def record_declined(
        self,
        plan_id: str,
        user: str,
        outcome: Literal["declined", "cancelled"],
        *,
        agent_comment: str = "",
        person_comment: str = "",
        reason: str = "",
    ) -> Plan:
        """Record that the human declined or dismissed the confirmation prompt; the plan stays pending.

        ``reason`` says why an answer counted as a decline (e.g. ``answer_not_boolean_true``).
        """
        plan = await self.projects.get_plan(plan_id)
        details: dict[str, Any] = {
            "agent_comment": clean_untrusted(agent_comment, COMMENT_MAX),
            "person_comment": clean_untrusted(person_comment, COMMENT_MAX),
        }
        if reason:
            details["reason"] = reason
        await self._audit(plan, user, "plan.approve", outcome, **details)
        log.info("plan_approval_declined", project_id=plan.project_id, plan_id=plan.id, user=user, outcome=outcome)
        return plan

    async def request_out_of_band(self, plan_id: str, user: str, command: str) -> Plan:
        """Mark a pending plan as waiting for a person's approval in a terminal (audited).

        Then ``execute_plan`` says exactly that, instead of sending the agent back to approve_plan.
        """
        plan = await self.projects.get_plan(plan_id)
        if plan.status is not PlanStatus.PENDING:
            return plan
        request = ApprovalRequest(requested_at=self.clock(), requested_by=user, command=command)
        record = self._event(plan, user, "plan.approve", "awaiting_out_of_band", command=command)
        with contextlib.suppress(PlanStatusInvalid):  # someone acted first: their outcome stands
            plan = await self.projects.update_plan(
                plan.await_out_of_band(request), expected_status=PlanStatus.PENDING, audit=record
            )
        return plan

    async def reject(self, plan_id: str, user: str, reason: str = "") -> Plan:
        """Reject a pending or approved plan for good.

        Raises:
            AccessDenied: AUTH_001, neither an approver nor the plan's author.
            PlanStatusInvalid: PLAN_003, the plan is already executing or final (or moved meanwhile).
        """
        plan = await self.projects.get_plan(plan_id)
        project = await self.projects.get_project(plan.project_id)
        try:
            rules.require_may_reject(plan, project, user)
            rejected = plan.reject(Rejection(rejected_by=user, rejected_at=self.clock(), reason=reason))
            record = self._event(plan, user, "plan.reject", "ok", reason=reason, previous_status=plan.status.value)
            saved = await self.projects.update_plan(rejected, expected_status=plan.status, audit=record)
        except InfraError as exc:
            await self._audit(plan, user, "plan.reject", "refused", code=exc.code, reason=exc.message)
            raise
        log.info("plan_rejected", project_id=plan.project_id, plan_id=plan.id, user=user)
        return saved

    async def apply_rules(self, plan: Plan) -> Plan:
        """Approve a freshly made plan by the project's auto-approval rule, if it fits.

        Returns the plan unchanged when there is no rule or it does not fit (the reasons are logged
        and audited so a user can see why a human is needed).
        """
        try:
            project = await self.projects.get_project(plan.project_id)
        except NotFound:
            return plan
        rule = project.settings.approval.auto_approval
        if rule is None or plan.status is not PlanStatus.PENDING or not plan.has_changes:
            return plan
        mismatches = rules.rule_mismatches(plan, rule)
        if mismatches:
            await self._audit(plan, rules.RULE_APPROVER, "plan.auto_approve", "not_applicable", reasons=mismatches)
            return plan
        try:
            await self._require_fresh(plan, project)
            self.require_genuine(plan)
        except InfraError as exc:
            await self._audit(plan, rules.RULE_APPROVER, "plan.auto_approve", "refused", code=exc.code)
            return await self.projects.get_plan(plan.id)
        return await self._approve(
            plan,
            project,
            approver=rules.RULE_APPROVER,
            actor=rules.RULE_APPROVER,
            method=ApprovalMethod.RULE,
            agent_comment="approved by the project's auto-approval rule",
        )

    def _event(self, plan: Plan, actor: str, action: str, outcome: str, **details: Any) -> AuditEvent:
        return AuditEvent.about_plan(plan, actor=actor, action=action, outcome=outcome, at=self.clock(), **details)

    async def _audit(self, plan: Plan, actor: str, action: str, outcome: str, **details: Any) -> None:
        await self.refusals.append(self._event(plan, actor, action, outcome, **details))

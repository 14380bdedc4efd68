"""Tools and resources for plans, approval (with human confirmation by elicitation) and execution."""

# No `from __future__ import annotations`: approve_plan's Resolve(ask_human) names a local function,
# which the SDK could not evaluate from a string annotation.

import json
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, Elicit, ElicitationResult, MCPServer, Resolve
from mcp.server.mcpserver.resolve import AcceptedElicitation, CancelledElicitation
from pydantic import BaseModel, Field, WithJsonSchema

from infra_mcp.domain.plan import Action, ApprovalMethod, Plan, PlanStatus
from infra_mcp.domain.redaction import redacted
from infra_mcp.domain.render import render_plan
from infra_mcp.domain.text import COMMENT_MAX, clean_untrusted, quoted_as_author
from infra_mcp.errors import InfraError, NotFound
from infra_mcp.server.annotations import DESTRUCTIVE, READ_ONLY, WRITES
from infra_mcp.server.errors import handle_resource_errors, handle_tool_errors
from infra_mcp.server.out_of_band import approval_command
from infra_mcp.server.params import Description, PlanId, ProjectId
from infra_mcp.server.pending import PENDING_URI
from infra_mcp.server.plan_models import (
    ApprovalResult,
    PendingPlans,
    PlanList,
    PlanResult,
    pending_view,
    plan_result,
    summary_view,
)
from infra_mcp.server.runtime import Runtime

AUDIT_PAGE = 200
# The prompt lists this many destroys/replaces and security findings, then "and K more".
PROMPT_MAX_DESTROYS = 10
PROMPT_MAX_FINDINGS = 5
_LINE_MAX = 300


class ApprovalAnswer(BaseModel):
    """What the human answers in the confirmation prompt.

    The schema the client shows is a boolean and a string, but the answer is read as sent: only
    a JSON ``true`` approves. Lax parsing would turn ``"yes"``, ``"on"`` or ``1`` into an approval
    (and a client or an agent filling the form could send any of them); those count as a decline.
    """

    approve: Annotated[
        Any,
        WithJsonSchema(
            {"type": "boolean", "title": "Approve", "description": "Approve this plan so it can be executed?"}
        ),
    ] = None
    comment: Annotated[
        Any,
        WithJsonSchema(
            {
                "type": "string",
                "title": "Comment",
                "description": f"Optional note recorded with your decision (at most {COMMENT_MAX} characters).",
                "maxLength": COMMENT_MAX,
            }
        ),
    ] = ""

    @property
    def approved(self) -> bool:
        return self.approve is True

    @property
    def note(self) -> str:
        return clean_untrusted(self.comment, COMMENT_MAX) if isinstance(self.comment, str) else ""


class _Skip:
    """A resolver outcome meaning: no human prompt (with the reason the tool body acts on)."""

    def __init__(self, *, error: InfraError | None = None) -> None:
        self.error = error


def _line(text: str) -> str:
    return clean_untrusted(text, _LINE_MAX)


def approval_prompt(plan: Plan) -> str:
    """The text the person sees: facts the server computed first, the author's words last.

    Order: what is asked, summary, risk, cost, every destroy and replace (or the riskiest
    ``PROMPT_MAX_DESTROYS`` and "and K more"), security findings, the other riskiest changes,
    then the author's description, cleaned, cut and marked as the author's. Every line is cleaned
    of control and bidi characters, so nothing in a plan can fake a line of the server's.
    """
    changes = plan.actionable_changes
    destroys = sorted(
        (c for c in changes if c.action in (Action.DELETE, Action.REPLACE)), key=lambda c: (-c.risk.rank, c.name)
    )
    security = [finding for c in changes for finding in c.security_findings]
    others = sorted((c for c in changes if c not in destroys), key=lambda c: (-c.risk.rank, c.name))[:5]
    cost = plan.cost
    lines = [
        f"Approve plan {plan.id} for project '{plan.project_id}'? (facts computed by infra-mcp)",
        plan.summary.text,
        f"Risk: {plan.risk.value.upper()}",
        f"Monthly cost: {cost.monthly_delta:+.2f} {cost.currency} ({cost.monthly_before:.2f} → {cost.monthly_after:.2f})"
        + (f"; {len(cost.unpriced)} usage-based or unpriced" if cost.unpriced else ""),
    ]
    if destroys:
        lines.append(f"Destroyed or replaced ({len(destroys)}):")
        for change in destroys[:PROMPT_MAX_DESTROYS]:
            why = f" — {change.risk_reasons[0]}" if change.risk_reasons else ""
            was = f", was {change.previous_type}" if change.previous_type else ""
            lines.append(
                _line(f"  [{change.risk.value}] {change.action.value} {change.name} ({change.type}{was}){why}")
            )
        if len(destroys) > PROMPT_MAX_DESTROYS:
            lines.append(f"  ...and {len(destroys) - PROMPT_MAX_DESTROYS} more destroyed or replaced")
    if security:
        lines.append(f"Security-relevant ({len(security)}):")
        lines.extend(_line(f"  - {finding}") for finding in security[:PROMPT_MAX_FINDINGS])
        if len(security) > PROMPT_MAX_FINDINGS:
            lines.append(f"  ...and {len(security) - PROMPT_MAX_FINDINGS} more")
    if others:
        lines.append("Other changes, riskiest first:")
        for change in others:
            why = f" — {change.risk_reasons[0]}" if change.risk_reasons else ""
            lines.append(_line(f"  [{change.risk.value}] {change.action.value} {change.name} ({change.type}){why}"))
        rest = len(changes) - len(destroys) - len(others)
        if rest > 0:
            lines.append(f"  ...and {rest} more")
    lines.append(
        _line(
            f"Made by {plan.author}. Approving lets execute_plan apply exactly this plan "
            f"(fingerprint {plan.fingerprint[:19]}) to AWS."
        )
    )
    if plan.description:
        lines.append(quoted_as_author(plan.description, plan.author))
    return "\n".join(line for line in lines if line)


def register_plan_tools(mcp: MCPServer[Any], rt: Runtime) -> None:
    def view(plan: Plan) -> PlanResult:
        return plan_result(redacted(plan))

    async def made(plan: Plan) -> PlanResult:
        # Auto-approval happened inside the planning use case; the sessions hear that pending plans changed.
        await rt.pending_changed(plan.project_id)
        return view(plan)

    @mcp.tool(name="plan_changes", annotations=WRITES)
    @handle_tool_errors("plan_changes")
    async def plan_changes(
        project_id: ProjectId,
        desired_state: Annotated[
            dict[str, Any],
            Field(
                description='The full desired state: {"resources": [{"name", "type": "AWS::EC2::VPC", '
                '"properties": {...}, "tags": {...}, "region"?, "depends_on"?}]}. References: {"Ref": name}, '
                '{"Fn::GetAtt": [name, attr]}. Resources in state but absent here are deleted.'
            ),
        ],
        description: Description = "",
    ) -> PlanResult:
        """Plan a whole project at once, from its full desired state. Next: show the user the plan, then
        approve_plan or reject_plan."""
        return await made(await rt.app.planning.plan_changes(project_id, desired_state, description, rt.user))

    @mcp.tool(name="create_resource", annotations=WRITES)
    @handle_tool_errors("create_resource")
    async def create_resource(
        project_id: ProjectId,
        name: Annotated[str, Field(description="Logical name, unique in the project.")],
        type: Annotated[str, Field(description="CloudFormation type, e.g. AWS::S3::Bucket (or S3::Bucket).")],
        properties: Annotated[dict[str, Any] | None, Field(description="Resource properties.")] = None,
        tags: Annotated[dict[str, str] | None, Field(description="Tags.")] = None,
        region: Annotated[str | None, Field(description="Region (default: the project's).")] = None,
        depends_on: Annotated[list[str] | None, Field(description="Names this must wait for.")] = None,
        description: Description = "",
    ) -> PlanResult:
        """Plan creating one resource (a one-change plan). Next: approve_plan, then execute_plan."""
        plan = await rt.app.planning.create_resource(
            project_id,
            name=name,
            type=type,
            properties=properties,
            tags=tags,
            region=region,
            depends_on=depends_on,
            description=description,
            user=rt.user,
        )
        return await made(plan)

    @mcp.tool(name="update_resource", annotations=WRITES)
    @handle_tool_errors("update_resource")
    async def update_resource(
        project_id: ProjectId,
        resource: Annotated[str, Field(description="Logical name or physical id.")],
        properties: Annotated[
            dict[str, Any] | None, Field(description="Properties to set (merged; null removes one).")
        ] = None,
        tags: Annotated[dict[str, str | None] | None, Field(description="Tags to set (null removes).")] = None,
        description: Description = "",
    ) -> PlanResult:
        """Plan changing one resource's properties or tags (may be a replacement). Next: approve_plan, then
        execute_plan."""
        plan = await rt.app.planning.update_resource(
            project_id, resource=resource, properties=properties, tags=tags, description=description, user=rt.user
        )
        return await made(plan)

    @mcp.tool(name="delete_resource", annotations=WRITES)
    @handle_tool_errors("delete_resource")
    async def delete_resource(
        project_id: ProjectId,
        resource: Annotated[str, Field(description="Logical name or physical id.")],
        description: Description = "",
    ) -> PlanResult:
        """Plan deleting one resource. Next: approve_plan, then execute_plan."""
        plan = await rt.app.planning.delete_resource(
            project_id, resource=resource, description=description, user=rt.user
        )
        return await made(plan)

    @mcp.tool(name="plan_rollback", annotations=WRITES)
    @handle_tool_errors("plan_rollback")
    async def plan_rollback(
        project_id: ProjectId,
        to_version: Annotated[int, Field(ge=1, description="State history version to return to.")],
    ) -> PlanResult:
        """Plan making AWS match an older state version (see get_state_history). Next: approve_plan, then
        execute_plan."""
        return await made(await rt.app.planning.plan_rollback(project_id, to_version, rt.user))

    @mcp.tool(name="get_plan", annotations=READ_ONLY)
    @handle_tool_errors("get_plan")
    async def get_plan(plan_id: PlanId) -> PlanResult:
        """Check a plan's status, changes and results, e.g. after a person approved it in a terminal."""
        return view(await rt.app.planning.get_plan(plan_id, rt.user))

    @mcp.tool(name="list_plans", annotations=READ_ONLY)
    @handle_tool_errors("list_plans")
    async def list_plans(
        project_id: ProjectId,
        status: Annotated[PlanStatus | None, Field(description="Only plans with this status.")] = None,
    ) -> PlanList:
        """List a project's plans, newest first, to find one to approve, execute or review."""
        plans = await rt.app.planning.list_plans(project_id, rt.user, status)
        return PlanList(project_id=project_id, plans=[summary_view(p) for p in plans])

    async def ask_human(plan_id: str, ctx: Context) -> Any:
        """Decide whether a human must confirm; if so, ask through elicitation."""
        capabilities = ctx.client_capabilities
        elicitation = capabilities.elicitation if capabilities is not None else None
        can_prompt = not (elicitation is None or (elicitation.form is None and elicitation.url is not None))
        try:
            plan = await rt.app.approvals.plan_to_confirm(
                plan_id,
                rt.user,
                can_prompt=can_prompt,
                command_for=lambda planned: approval_command(planned, rt.settings),
            )
        except InfraError as exc:
            return _Skip(error=exc)
        if plan is None:
            return _Skip()
        return Elicit(approval_prompt(redacted(plan)), ApprovalAnswer)

    @mcp.tool(name="approve_plan", annotations=WRITES)
    @handle_tool_errors("approve_plan")
    async def approve_plan(
        plan_id: PlanId,
        confirmation: Annotated[ElicitationResult[ApprovalAnswer], Resolve(ask_human)],
        comment: Annotated[
            str,
            Field(
                description=f"Your (the agent's) note, recorded as the agent's, not the person's; at most "
                f"{COMMENT_MAX} characters.",
                max_length=COMMENT_MAX,
            ),
        ] = "",
    ) -> ApprovalResult:
        """Ask the person to approve a pending plan, in a prompt only they answer. Next: execute_plan if
        approved."""
        approvals = rt.app.approvals
        if isinstance(confirmation, AcceptedElicitation) and isinstance(confirmation.data, _Skip):
            skip = confirmation.data
            if skip.error is not None:
                raise skip.error
            plan = await approvals.approve(
                plan_id, rt.user, method=ApprovalMethod.NO_CONFIRMATION, agent_comment=comment
            )
            await rt.pending_changed(plan.project_id)
            return _approved(plan)
        if isinstance(confirmation, AcceptedElicitation) and confirmation.data.approved:
            plan = await approvals.approve(
                plan_id,
                rt.user,
                method=ApprovalMethod.ELICITATION,
                agent_comment=comment,
                person_comment=confirmation.data.note,
            )
            await rt.pending_changed(plan.project_id)
            return _approved(plan)
        outcome: Literal["declined", "cancelled"] = (
            "cancelled" if isinstance(confirmation, CancelledElicitation) else "declined"
        )
        accepted = isinstance(confirmation, AcceptedElicitation)
        said = confirmation.data.note if isinstance(confirmation, AcceptedElicitation) else ""
        plan = await approvals.record_declined(
            plan_id,
            rt.user,
            outcome,
            agent_comment=comment,
            person_comment=said,
            # The form came back 'accept' but its answer was not a JSON true: say why it counts as no.
            reason="answer_not_boolean_true" if accepted else "",
        )
        return ApprovalResult(
            plan_id=plan.id,
            outcome=outcome,
            status=plan.status.value,
            next_step="The human did not approve. Do not execute. Ask what to change, then make a new plan "
            "or reject this one.",
        )

    @mcp.tool(name="reject_plan", annotations=WRITES)
    @handle_tool_errors("reject_plan")
    async def reject_plan(
        plan_id: PlanId,
        reason: Annotated[
            str,
            Field(
                description=f"Why it is rejected (recorded; at most {COMMENT_MAX} characters).", max_length=COMMENT_MAX
            ),
        ] = "",
    ) -> ApprovalResult:
        """Reject a pending plan for good when the user does not want it; make a new plan instead."""
        plan = await rt.app.approvals.reject(plan_id, rt.user, reason)
        await rt.pending_changed(plan.project_id)
        return ApprovalResult(
            plan_id=plan.id,
            outcome="rejected",
            status=plan.status.value,
            next_step="Rejected for good: it can never be approved or executed. Make a new plan if a change is needed.",
        )

    @mcp.tool(name="execute_plan", annotations=DESTRUCTIVE)
    @handle_tool_errors("execute_plan")
    async def execute_plan(plan_id: PlanId, ctx: Context) -> PlanResult:
        """Apply an approved plan to AWS (real changes), with progress. Next: report each change's result."""

        async def progress(progress: float, total: float | None, message: str) -> None:
            await ctx.report_progress(progress, total, message)

        return view(await rt.app.execution.execute(plan_id, rt.user, progress))

    @mcp.resource(PENDING_URI, name="pending-plans", mime_type="application/json")
    @handle_resource_errors(PENDING_URI)
    async def pending_resource() -> str:
        """Plans waiting for a person in your projects, newest first, and whether you may approve each (to approve:
        approve_plan). Changes are announced with notifications/resources/list_changed."""
        waiting = await rt.app.approvals.awaiting(rt.user)
        return PendingPlans(
            user=rt.user,
            plans=[pending_view(plan, may) for plan, may in waiting],
        ).model_dump_json(indent=2)

    @mcp.resource("infra://projects/{project_id}/plans/{plan_id}", name="plan", mime_type="application/json")
    @handle_resource_errors("infra://projects/{project_id}/plans/{plan_id}")
    async def plan_resource(project_id: str, plan_id: str) -> str:
        """A plan in full: every property change, risk and cost line, findings, approval and execution."""
        return redacted(await _plan_in(rt, project_id, plan_id)).model_dump_json(indent=2)

    @mcp.resource("infra://projects/{project_id}/plans/{plan_id}/diff", name="plan-diff", mime_type="text/plain")
    @handle_resource_errors("infra://projects/{project_id}/plans/{plan_id}/diff")
    async def plan_diff_resource(project_id: str, plan_id: str) -> str:
        """A plan as text, like `terraform plan`: show it to the person reviewing it."""
        return render_plan(redacted(await _plan_in(rt, project_id, plan_id)))

    async def audit_page(project_id: str, before: str | None) -> str:
        events = await rt.app.projects.audit(project_id, rt.user, limit=AUDIT_PAGE + 1, before=before)
        more = len(events) > AUDIT_PAGE
        events = events[:AUDIT_PAGE]
        following = f"infra://projects/{project_id}/audit/before/{events[-1].id}" if more and events else None
        body = ",\n".join(e.model_dump_json() for e in events)
        return f'{{"project_id": {json.dumps(project_id)}, "next": {json.dumps(following)}, "events": [{body}]}}'

    @mcp.resource("infra://projects/{project_id}/audit", name="audit", mime_type="application/json")
    @handle_resource_errors("infra://projects/{project_id}/audit")
    async def audit_resource(project_id: str) -> str:
        """The project's audit log, newest first, a page at a time: follow ``next`` for older events."""
        return await audit_page(project_id, None)

    @mcp.resource(
        "infra://projects/{project_id}/audit/before/{event_id}", name="audit-page", mime_type="application/json"
    )
    @handle_resource_errors("infra://projects/{project_id}/audit/before/{event_id}")
    async def audit_older_resource(project_id: str, event_id: str) -> str:
        """The page of audit events written before ``event_id`` (a ``next`` link of the page before)."""
        return await audit_page(project_id, event_id)

    @mcp.resource("infra://projects/{project_id}/audit/verify", name="audit-verify", mime_type="application/json")
    @handle_resource_errors("infra://projects/{project_id}/audit/verify")
    async def audit_verify_resource(project_id: str) -> str:
        """Whether the project's audit log is intact: each entry carries a keyed hash of the one before."""
        return (await rt.app.audit.check(project_id, rt.user)).model_dump_json(indent=2)


async def _plan_in(rt: Runtime, project_id: str, plan_id: str) -> Plan:
    plan = await rt.app.planning.get_plan(plan_id, rt.user)
    if plan.project_id != project_id:
        raise NotFound(
            f"Plan {plan_id} does not belong to project {project_id!r}. Use the plan's own project in the URI; "
            "get_plan shows it.",
            details={"plan_id": plan_id},
        )
    return plan


def _approved(plan: Plan) -> ApprovalResult:
    approval = plan.approval
    return ApprovalResult(
        plan_id=plan.id,
        outcome="approved",
        status=plan.status.value,
        approved_by=approval.approved_by if approval else "",
        method=approval.method.value if approval else "",
        expires_at=approval.expires_at if approval else None,
        next_step="Call execute_plan to apply it." if plan.actionable_changes else "Nothing to execute.",
    )


__all__ = ["register_plan_tools"]

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
from infra_mcp.errors import InfraError, NotFound, ValidationFailed
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
    accepted = [c for c in plan.actionable_changes if c.record_only]
    changes = [c for c in plan.actionable_changes if not c.record_only]
    destroys = sorted(
        (c for c in changes if c.action in (Action.DELETE, Action.REPLACE)), key=lambda c: (-c.risk.rank, c.name)
    )
    security = [finding for c in plan.actionable_changes for finding in c.security_findings]
    others = sorted((c for c in changes if c not in destroys), key=lambda c: (-c.risk.rank, c.name))[:5]
    cost = plan.cost
    lines = [
        f"Approve plan {plan.id} for project '{plan.project_id}'? (facts computed by infra-mcp)",
        plan.summary.text,
        f"Risk: {plan.risk.value.upper()}",
        f"Monthly cost: {cost.monthly_delta:+.2f} {cost.currency} ({cost.monthly_before:.2f} → {cost.monthly_after:.2f})"
        + (f"; {len(cost.unpriced)} usage-based or unpriced" if cost.unpriced else ""),
    ]
    if accepted:
        lines.append(f"Drift accepted, nothing sent to AWS ({len(accepted)}): the record takes what is live for")
        lines.extend(
            _line(
                f"  - {c.name} ({c.type}): "
                + (
                    "deleted outside infra-mcp, dropped from state"
                    if c.action is Action.DELETE
                    else ", ".join(p.path for p in c.property_changes[:5])
                )
            )
            for c in accepted[:PROMPT_MAX_DESTROYS]
        )
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
            f"(fingerprint {plan.fingerprint[:19]}) "
            + ("to the project's record; nothing is sent to AWS." if accepted and not changes else "to AWS.")
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
            dict[str, Any] | None,
            Field(
                description='The full desired state: {"resources": [{"name", "type": "AWS::EC2::VPC", '
                '"properties": {...}, "tags": {...}, "region"?, "depends_on"?}]}. References: {"Ref": name}, '
                '{"Fn::GetAtt": [name, attr]}. Resources in state but absent here are deleted.'
            ),
        ] = None,
        to_version: Annotated[
            int | None, Field(ge=1, description="Instead: a state version to return to (get_state_history).")
        ] = None,
        description: Description = "",
        refresh: Annotated[bool, Field(description="Plan against live values (reverts drift).")] = False,
    ) -> PlanResult:
        """Plan a whole project from its full desired state, or back to a state version. Next: approve_plan."""
        refresher = rt.app.drift.refresh if refresh else None
        planning = rt.app.planning
        if (desired_state is None) == (to_version is None):
            raise ValidationFailed(
                "Pass either desired_state (the whole project as it should be) or to_version (a state version to "
                "return to), not both and not neither.",
                details={"field": "desired_state" if desired_state is None else "to_version"},
            )
        if to_version is not None:
            plan = await planning.plan_rollback(project_id, to_version, rt.user, description, refresh=refresher)
        else:
            plan = await planning.plan_changes(project_id, desired_state, description, rt.user, refresh=refresher)
        return await made(plan)

    @mcp.tool(name="plan_resource", annotations=WRITES)
    @handle_tool_errors("plan_resource")
    async def plan_resource(
        project_id: ProjectId,
        action: Literal["create", "update", "delete"],
        resource: Annotated[str, Field(description="Name (new for create), physical id or ARN.")],
        type: Annotated[str | None, Field(description="e.g. AWS::S3::Bucket")] = None,
        properties: Annotated[dict[str, Any] | None, Field(description="update: merged, null removes.")] = None,
        tags: dict[str, str | None] | None = None,
        region: Annotated[str | None, Field(description="create only, as type and depends_on.")] = None,
        depends_on: list[str] | None = None,
        description: Description = "",
    ) -> PlanResult:
        """Plan creating, updating or deleting one resource. Next: approve_plan."""
        planning = rt.app.planning
        if action == "create":
            plan = await planning.create_resource(
                project_id,
                name=resource,
                type=_required(type, "type", action),
                properties=properties,
                tags=_no_removals(tags),
                region=region,
                depends_on=depends_on,
                description=description,
                user=rt.user,
            )
        elif action == "update":
            _only_for_create(action, type=type, region=region, depends_on=depends_on)
            plan = await planning.update_resource(
                project_id, resource=resource, properties=properties, tags=tags, description=description, user=rt.user
            )
        else:
            _only_for_create(action, type=type, region=region, depends_on=depends_on)
            if properties is not None or tags is not None:
                raise ValidationFailed(
                    "delete takes no properties or tags. Leave them out, or use action 'update'.",
                    details={"field": "properties" if properties is not None else "tags"},
                )
            plan = await planning.delete_resource(project_id, resource=resource, description=description, user=rt.user)
        return await made(plan)

    @mcp.tool(name="get_plan", annotations=READ_ONLY)
    @handle_tool_errors("get_plan")
    async def get_plan(plan_id: PlanId) -> PlanResult:
        """Check a plan's status, changes and results."""
        return view(await rt.app.planning.get_plan(plan_id, rt.user))

    @mcp.tool(name="list_plans", annotations=READ_ONLY)
    @handle_tool_errors("list_plans")
    async def list_plans(
        project_id: ProjectId,
        status: PlanStatus | None = None,
    ) -> PlanList:
        """List a project's plans, newest first."""
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
                description="Your note, recorded as the agent's (not the person's).",
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
            Field(description="Why (recorded).", max_length=COMMENT_MAX),
        ] = "",
    ) -> ApprovalResult:
        """Reject a pending plan for good when the user does not want it."""
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
        """Apply an approved plan to AWS, with progress. Next: report each change's result."""

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
    async def plan_document(project_id: str, plan_id: str) -> str:
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


def _required(value: str | None, field: str, action: str) -> str:
    if value is None:
        raise ValidationFailed(
            f"{action} needs '{field}'. Pass it, e.g. type 'AWS::S3::Bucket'.", details={"field": field}
        )
    return value


def _no_removals(tags: dict[str, str | None] | None) -> dict[str, str] | None:
    if tags is None:
        return None
    removed = [k for k, v in tags.items() if v is None]
    if removed:
        raise ValidationFailed(
            f"create takes tag values, not null (tag {removed[0][:80]!r}). Give each tag a string value.",
            details={"field": f"tags.{removed[0][:80]}"},
        )
    return {k: v for k, v in tags.items() if v is not None}


def _only_for_create(action: str, **given: Any) -> None:
    extra = [name for name, value in given.items() if value is not None]
    if extra:
        raise ValidationFailed(
            f"{action} does not take '{extra[0]}' (only create does). Leave it out; to change a resource's type or "
            "region, plan it with plan_changes.",
            details={"field": extra[0]},
        )


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

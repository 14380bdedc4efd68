"""The ``plan_template`` tool: a CloudFormation template planned as it is, into the plan ``plan_changes`` makes."""

import json
from typing import TYPE_CHECKING, Annotated, Any

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from infra_mcp.domain.render import render_plan
from infra_mcp.server.annotations import WRITES
from infra_mcp.server.errors import handle_resource_errors, handle_tool_errors
from infra_mcp.server.plan_models import PlanView, next_step, redacted
from infra_mcp.server.plan_tools import NEVER_TOUCHES_AWS, Description, ProjectId

if TYPE_CHECKING:
    from infra_mcp.server.app import Runtime

MAX_TEMPLATE = 1_000_000


def register_template_tools(mcp: MCPServer[Any], rt: "Runtime") -> None:
    @mcp.tool(name="plan_template", title="Plan a CloudFormation template", annotations=WRITES)
    @handle_tool_errors("plan_template")
    async def plan_template(
        project_id: ProjectId,
        template: Annotated[
            str,
            Field(
                description="The template's text: YAML (short tags !Ref, !Sub, !GetAtt... allowed) or JSON. "
                "Its resources are the project's full desired state: resources in state but absent here are deleted.",
                max_length=MAX_TEMPLATE,
            ),
        ],
        parameters: Annotated[
            dict[str, Any] | None,
            Field(description='Values of the template\'s Parameters, e.g. {"Env": "prod"} (others take Default).'),
        ] = None,
        description: Description = "",
    ) -> PlanView:
        """Plan a CloudFormation template (Parameters, Conditions, Mappings, intrinsic functions) like plan_changes."""
        plan = await rt.app.templates.plan_template(project_id, template, parameters, description, rt.user)
        shown = redacted(await rt.app.approvals.apply_rules(plan))
        return PlanView(plan=shown, diff=render_plan(shown), next_step=next_step(plan))

    plan_template.__doc__ = (plan_template.__doc__ or "") + " " + NEVER_TOUCHES_AWS

    @mcp.resource("infra://projects/{project_id}/outputs", name="outputs", mime_type="application/json")
    @handle_resource_errors("infra://projects/{project_id}/outputs")
    async def outputs_resource(project_id: str) -> str:
        """The Outputs of the template last executed in the project, resolved against its state."""
        outputs = await rt.app.templates.outputs(project_id, rt.user)
        return json.dumps({"project_id": project_id, "outputs": outputs}, indent=2, default=str)

"""The ``plan_template`` tool: a CloudFormation template planned as it is, into the plan ``plan_changes`` makes."""

import json
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from infra_mcp.domain.redaction import redacted
from infra_mcp.server.annotations import WRITES
from infra_mcp.server.errors import handle_resource_errors, handle_tool_errors
from infra_mcp.server.params import Description, ProjectId
from infra_mcp.server.plan_models import PlanResult, plan_result
from infra_mcp.server.runtime import Runtime

MAX_TEMPLATE = 1_000_000


def register_template_tools(mcp: MCPServer[Any], rt: Runtime) -> None:
    @mcp.tool(name="plan_template", annotations=WRITES)
    @handle_tool_errors("plan_template")
    async def plan_template(
        project_id: ProjectId,
        template: Annotated[
            str,
            Field(
                description="YAML (short tags allowed) or JSON; its resources are the full desired state "
                "(others are deleted).",
                max_length=MAX_TEMPLATE,
            ),
        ],
        parameters: Annotated[
            dict[str, Any] | None,
            Field(description="Parameter values (others take their Default)."),
        ] = None,
        description: Description = "",
    ) -> PlanResult:
        """Plan a CloudFormation template as it is, like plan_changes. Next: approve_plan."""
        plan = await rt.app.templates.plan_template(project_id, template, parameters, description, rt.user)
        return plan_result(redacted(plan))

    @mcp.resource("infra://projects/{project_id}/outputs", name="outputs", mime_type="application/json")
    @handle_resource_errors("infra://projects/{project_id}/outputs")
    async def outputs_resource(project_id: str) -> str:
        """The Outputs of the template last executed in the project, resolved against its state."""
        outputs = await rt.app.templates.outputs(project_id, rt.user)
        return json.dumps({"project_id": project_id, "outputs": outputs}, indent=2, default=str)

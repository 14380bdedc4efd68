"""Tool parameter types shared by the tool modules: defined once, described for the calling model."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from infra_mcp.domain.text import DESCRIPTION_MAX

# No description: the name says it, and it appears in most tools (create_project's NewProjectId says the format).
ProjectId = Annotated[str, Field(max_length=200)]
NewProjectId = Annotated[
    str, Field(description="Lower-case letters, digits and hyphens, e.g. 'web-app'.", max_length=200)
]
PlanId = Annotated[str, Field(description="e.g. plan-1a2b3c4d5e6f", max_length=100)]
Description = Annotated[
    str,
    Field(
        description="Why (approvers read it).",
        max_length=DESCRIPTION_MAX,
    ),
]

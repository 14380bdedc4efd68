"""Planning from a CloudFormation template (``plan_template``): the same plan ``plan_changes`` makes.

The template is decoded and evaluated by the domain (``domain/template``), with the pseudo
parameters of the real account and the project's region; the result is parsed as a full desired
state and planned by :class:`PlanningService`, so approval and execution do not know the
difference. Values of ``NoEcho`` parameters are sealed where they land before the plan exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import structlog

from infra_mcp.domain.cloud import CallerIdentity
from infra_mcp.domain.desired import parse_desired_state, raise_findings
from infra_mcp.domain.payload import UnresolvedReference, resolve
from infra_mcp.domain.plan import KNOWN_AFTER_APPLY, Finding, Plan, PlanStatus, ResourceSpec
from infra_mcp.domain.policies import SnapshotOutcome, snapshot_note, snapshot_on_delete
from infra_mcp.domain.project import Project
from infra_mcp.domain.template.intrinsics import is_symbolic
from infra_mcp.domain.template.reader import TemplateReading, decode_template, read_template
from infra_mcp.errors import ValidationFailed
from infra_mcp.services.planning import PlanningService

log = structlog.get_logger(__name__)

MAX_TEMPLATE_CHARS = 1_000_000  # CloudFormation's own limit for a template in S3
# Which account a template is evaluated for only matters where it says so; other templates plan
# without asking the upstream anything.
_ACCOUNT_PSEUDO = ("AWS::AccountId", "AWS::StackId")


class Identity(Protocol):
    """The part of the upstream a template needs: who we are there."""

    async def caller_identity(self, *, region: str) -> CallerIdentity: ...


class TemplatePlanning:
    """Plans CloudFormation templates.

    Args:
        planning: Makes and stores the plan.
        identity: The upstream, for ``AWS::AccountId`` (the sandbox answers 000000000000).
    """

    def __init__(self, planning: PlanningService, identity: Identity) -> None:
        self.planning = planning
        self.identity = identity

    async def plan_template(
        self,
        project_id: str,
        template: str,
        parameters: Mapping[str, Any] | None,
        description: str,
        user: str,
    ) -> Plan:
        """Plan the project towards a template (a full desired state: what it lacks is deleted).

        Raises:
            ValidationFailed: VALIDATION_001 listing every problem, located in the template; nothing is stored.
            AccessDenied: AUTH_001 without the plan permission.
        """
        project = await self.planning.project_to_plan(project_id, user)
        if not isinstance(template, str) or not template.strip():
            raise ValidationFailed(
                "'template' is empty. Pass the template's text (YAML or JSON), not a path or URL.",
                details={"field": "template"},
            )
        if len(template) > MAX_TEMPLATE_CHARS:
            raise ValidationFailed(
                f"The template has {len(template)} characters; the limit is {MAX_TEMPLATE_CHARS}. Make it smaller: "
                "split the resources across projects, or remove comments and unused sections.",
                details={"field": "template"},
            )
        if parameters is not None and not isinstance(parameters, dict):
            raise ValidationFailed(
                "'parameters' must be an object. Pass parameter names with their values, e.g. "
                '{"Environment": "dev"}.',
                details={"field": "parameters"},
            )
        decoded, problems = decode_template(template)
        if decoded is None:
            raise_findings(problems, "template")
        reading = read_template(decoded, parameters or {}, pseudo=await self._pseudo(project, template))
        errors = [f for f in reading.findings if f.severity == "error"]
        if errors:
            raise_findings(errors, "template")
        names = [str(r["name"]) for r in reading.resources]
        try:
            specs = parse_desired_state(
                {"resources": reading.resources}, self.planning.catalog, default_region=project.settings.default_region
            )
            specs = _with_policies(_sealed(specs, reading, self.planning), reading)
            notes = [*reading.findings, *_notes(reading, specs)]
            plan = await self.planning.plan_full(
                project,
                specs,
                description=description or "Plan a CloudFormation template",
                user=user,
                notes=notes,
                outputs=reading.outputs,
                # cfn-lint sees the zone GetAZs chose, not the GetAZs the template wrote.
                quiet=frozenset((name, "/properties" + path, "W3010") for name, path in reading.zone_paths),
            )
        except ValidationFailed as exc:
            raise _in_template_terms(exc, names) from None
        log.info("template_planned", project_id=project.id, plan_id=plan.id, resources=len(specs))
        return plan

    async def outputs(self, project_id: str, user: str) -> dict[str, Any]:
        """The Outputs kept in the project's current state (resolved when its template's plan executed).

        A state written before outputs were kept (``outputs`` None) has them resolved here, from the
        template plan last executed, as before: an output whose resources are not (or no longer) in
        state reads ``(known after apply)``.

        Raises:
            NotFound: RESOURCE_001 if there is no such project (or ``user`` is no member).
        """
        project = await self.planning.project_for_reading(project_id, user)
        state = await self.planning.states.for_project(project).read(project_id)
        if state is not None and state.outputs is not None:
            return dict(state.outputs)
        executed = await self.planning.projects.list_plans(project_id, statuses=[PlanStatus.EXECUTED], limit=50)
        latest = next((p for p in executed if p.kind == "full"), None)
        if latest is None or not latest.outputs:
            return {}
        resources = {r.name: r for r in state.resources} if state is not None else {}
        region = project.settings.default_region
        shown: dict[str, Any] = {}
        for name, value in latest.outputs.items():
            try:
                shown[name] = resolve(value, resources, region=region)
            except UnresolvedReference:
                shown[name] = KNOWN_AFTER_APPLY
        return shown

    async def _pseudo(self, project: Project, template: str) -> dict[str, Any]:
        region = project.settings.default_region
        pseudo: dict[str, Any] = {
            "AWS::Region": region,
            "AWS::Partition": _partition(region),
            "AWS::URLSuffix": "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com",
            "AWS::StackName": project.id,
            "AWS::NotificationARNs": [],
        }
        if any(name in template for name in _ACCOUNT_PSEUDO):
            account = (await self.identity.caller_identity(region=region)).account
            pseudo["AWS::AccountId"] = account
            pseudo["AWS::StackId"] = (
                f"arn:{pseudo['AWS::Partition']}:cloudformation:{region}:{account}:stack/{project.id}/infra-mcp"
            )
        return pseudo


def _partition(region: str) -> str:
    """The partition a region belongs to (China and GovCloud regions have their own)."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _in_template_terms(exc: ValidationFailed, names: list[str]) -> ValidationFailed:
    """The same error with every finding located in the template (``/Resources/<id>/Properties/...``).

    The desired-state parser locates by index (``/resources/3/properties/X``) and validation by
    resource and ``/properties/X``; a template's author looks for logical ids.
    """
    findings = exc.details.get("findings")
    if not isinstance(findings, list):
        return exc
    moved = []
    for finding in findings:
        path, resource = str(finding.get("path", "")), finding.get("resource")
        parts = path.split("/")
        if len(parts) > 2 and parts[1] == "resources" and parts[2].isdigit() and int(parts[2]) < len(names):
            resource, parts = names[int(parts[2])], ["", *parts[3:]]
        if resource and not path.startswith("/Resources/"):
            rest = "/".join(parts[1:])
            rest = "Properties" + rest[len("properties") :] if rest.startswith("properties") else rest
            rest = "DependsOn" + rest[len("depends_on") :] if rest.startswith("depends_on") else rest
            path = f"/Resources/{resource}" + (f"/{rest}" if rest else "")
        moved.append({**finding, "resource": resource, "path": path})
    message = exc.message.replace("desired state", "template").replace("The plan has", "The template has")
    return ValidationFailed(message, details={**exc.details, "findings": moved})


def _with_policies(specs: list[ResourceSpec], reading: TemplateReading) -> list[ResourceSpec]:
    """Each spec with its template's DeletionPolicy (kept in state for the plan that removes it) and
    UpdateReplacePolicy (read by the plan that replaces it)."""
    result = []
    for spec in specs:
        update: dict[str, Any] = {}
        if spec.name in reading.deletion_policies:
            update["deletion_policy"] = reading.deletion_policies[spec.name]
        if reading.replace_policies.get(spec.name) in ("Retain", "Snapshot"):
            update["replace_policy"] = reading.replace_policies[spec.name]
        result.append(spec.model_copy(update=update) if update else spec)
    return result


def _sealed(specs: list[ResourceSpec], reading: TemplateReading, planning: PlanningService) -> list[ResourceSpec]:
    """``specs`` with every value derived from a ``NoEcho`` parameter sealed."""
    if not reading.secret_paths:
        return specs
    by_name: dict[str, list[str]] = {}
    for name, pointer in reading.secret_paths:
        by_name.setdefault(name, []).append(pointer)
    result = []
    for spec in specs:
        pointers = by_name.get(spec.name)
        if not pointers:
            result.append(spec)
            continue
        properties = spec.properties
        for pointer in pointers:
            properties = _replace_at(properties, pointer, planning.seal)
        result.append(spec.model_copy(update={"properties": properties}))
    return result


def _replace_at(tree: Any, pointer: str, change: Any) -> Any:
    segments = [s.replace("~1", "/").replace("~0", "~") for s in pointer.lstrip("/").split("/")] if pointer else []
    if not segments:
        return change(tree)
    head, rest = segments[0], "/".join(s.replace("~", "~0").replace("/", "~1") for s in segments[1:])
    if isinstance(tree, dict) and head in tree:
        return {**tree, head: _replace_at(tree[head], "/" + rest if rest else "", change)}
    if isinstance(tree, list) and head.isdigit() and int(head) < len(tree):
        index = int(head)
        return [*tree[:index], _replace_at(tree[index], "/" + rest if rest else "", change), *tree[index + 1 :]]
    return tree


def _notes(reading: TemplateReading, specs: list[ResourceSpec]) -> list[Finding]:
    """What the reviewer should know besides the changes: outputs, deletion and replace policies."""
    types = {spec.name: spec for spec in specs}
    notes: list[Finding] = []
    for name, value in reading.outputs.items():
        shown = KNOWN_AFTER_APPLY if is_symbolic(value) else value
        notes.append(
            Finding(severity="info", path=f"/Outputs/{name}", rule="output", message=f"Output {name} = {shown}")
        )
    for name, policy in reading.deletion_policies.items():
        if policy in ("Retain", "RetainExceptOnCreate"):
            message = (
                f"DeletionPolicy {policy}: when {name} is removed from the template, it is left in place in AWS "
                "and dropped from state, not deleted."
            )
        else:
            outcome = _snapshot_outcome(types.get(name))
            message = f"When {name} is deleted: {snapshot_note('DeletionPolicy', outcome, _type_of(types.get(name)))}."
        notes.append(
            Finding(
                severity="warning"
                if policy == "Snapshot" and _snapshot_outcome(types.get(name)) == "not_taken"
                else "info",
                resource=name,
                path=f"/Resources/{name}/DeletionPolicy",
                rule="deletion-policy",
                message=message,
            )
        )
    for name, policy in reading.replace_policies.items():
        if policy == "Retain":
            message = f"UpdateReplacePolicy Retain: when a plan replaces {name}, the old one is left in place in AWS "
            message += "and dropped from state, not deleted."
            severity = "info"
        elif policy == "Snapshot":
            outcome = _snapshot_outcome(types.get(name))
            message = f"When a plan replaces {name}: {snapshot_note('UpdateReplacePolicy', outcome, _type_of(types.get(name)))}."
            severity = "warning" if outcome == "not_taken" else "info"
        else:
            message = f"UpdateReplacePolicy {policy} is not one CloudFormation takes here; a replaced {name} is "
            message += "deleted. Use Delete, Retain or Snapshot."
            severity = "warning"
        notes.append(
            Finding(
                severity=severity,
                resource=name,
                path=f"/Resources/{name}/UpdateReplacePolicy",
                rule="replace-policy",
                message=message,
            )
        )
    return notes


def _type_of(spec: ResourceSpec | None) -> str:
    return spec.type if spec is not None else ""


def _snapshot_outcome(spec: ResourceSpec | None) -> SnapshotOutcome:
    return snapshot_on_delete(spec.type, spec.properties) if spec is not None else "not_taken"

"""Planning use cases: make, read and list change plans. Nothing here touches AWS.

Every plan is computed from the project's current state by the pure planner, with write-only
values sealed first (so neither the stored plan nor any error holds a secret in clear), and is
stored as ``pending``. A plan that fails validation is not stored at all.
"""

from __future__ import annotations

import gc
import re
import secrets as random_ids
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal, Protocol

import structlog

from infra_mcp.catalog.prices import bundled_pricing
from infra_mcp.domain.audit import AuditEvent
from infra_mcp.domain.coerce import coerce_properties
from infra_mcp.domain.common import validate_project_id
from infra_mcp.domain.cost import Pricing
from infra_mcp.domain.desired import parse_desired_state, raise_findings, with_graph
from infra_mcp.domain.integrity import Notary
from infra_mcp.domain.paths import transform_at
from infra_mcp.domain.plan import Action, Finding, Plan, PlanStatus, ResourceSpec
from infra_mcp.domain.planner import make_plan
from infra_mcp.domain.project import Permission, Project
from infra_mcp.domain.render import render_plan
from infra_mcp.domain.sealed import is_sealed, is_secret_digest
from infra_mcp.domain.state import StateFile, StateResource
from infra_mcp.domain.template.intrinsics import is_symbolic
from infra_mcp.domain.type_catalog import TypeCatalog
from infra_mcp.domain.typefacts import type_facts
from infra_mcp.domain.validation import validate_specs
from infra_mcp.errors import AlreadyExists, NotFound, ValidationFailed
from infra_mcp.ports import ProjectStore, StateStores
from infra_mcp.services.secrets import SecretSealer

log = structlog.get_logger(__name__)

_PLAN_ID = re.compile(r"plan-[0-9a-f]{12}")


class RefreshedState(Protocol):
    """The state as it is live (``DriftService.refresh``): what a refreshed plan diffs against."""

    state: StateFile | None

    def annotate(self, plan: Plan) -> Plan: ...


Refresher = Callable[[Project, StateFile | None, set[str]], Awaitable[RefreshedState]]


def new_plan_id() -> str:
    return "plan-" + random_ids.token_hex(6)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector around one plan's CPU work.

    A plan allocates hundreds of thousands of small objects beside a state of as many; with the
    collector on, its generation scans over that heap take half of a 10,000-resource plan. What
    a plan allocates is freed by reference counting; cycles are collected once it resumes.
    Nested or concurrent pauses only resume what they paused.
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


class PlanningService:
    """Makes plans from desired states or single-resource requests.

    Args:
        projects: Projects and plans (SQLite).
        states: The state store of each project.
        catalog: Resource type knowledge.
        sealer: Seals write-only values before a plan is stored.
        pricing: Where prices come from (the bundled table by default).
        lint: Run cfn-lint on changed resources (tests of unrelated rules may turn it off).
        settle: Reconciles a project not reconciled yet since start-up before its plans are read
            (that may finish an interrupted plan); never raises when the project's storage fails, so
            plans stay readable while it is degraded.
    """

    def __init__(
        self,
        projects: ProjectStore,
        states: StateStores,
        catalog: TypeCatalog,
        sealer: SecretSealer,
        *,
        notary: Notary,
        pricing: Pricing | None = None,
        lint: bool = True,
        settle: Callable[[str], Awaitable[object]] | None = None,
        approve_by_rule: Callable[[Plan], Awaitable[Plan]] | None = None,
    ) -> None:
        self.projects = projects
        self.approve_by_rule = approve_by_rule
        self.settle = settle
        self.notary = notary
        self.states = states
        self.catalog = catalog
        self.sealer = sealer
        self.pricing = pricing or bundled_pricing()
        self.lint = lint

    # -- helpers -------------------------------------------------------------------------------

    async def _project(self, project_id: str, user: str, permission: Permission) -> Project:
        validate_project_id(project_id)
        project = await self.projects.get_project(project_id)
        project.require(user, permission)
        return project

    async def _state(self, project: Project) -> StateFile | None:
        return await self.states.for_project(project).read(project.id)

    def _seal(self, specs: list[ResourceSpec], current: StateFile | None = None) -> list[ResourceSpec]:
        """Convert scalars as CloudFormation does, then seal every write-only value.

        Sealed values are re-sealed (proves they are ours, fixes digests). The conversion comes
        first so that validation, the diff and execution all see the value CloudFormation would.

        A resource declared exactly as ``current`` records it (same type, region and properties)
        is passed as it is: state keeps what was converted and sealed before, with secrets as
        digests, so converting or sealing it again would give the same properties back. In a
        large project that is nearly every resource.
        """
        settled = (
            {r.name: (r.type, r.region, r.declared) for r in current.resources if r.declared}
            if current is not None
            else {}
        )
        sealed: list[ResourceSpec] = []
        for spec in specs:
            if settled.get(spec.name) == (spec.type, spec.region, spec.properties):
                sealed.append(spec)
                continue
            facts = type_facts(self.catalog, spec.type, spec.region)
            properties = coerce_properties(spec.properties, facts.info)
            if facts.secret:
                properties = transform_at(properties, facts.secret, self._seal_value)
            properties = self._reseal(properties)
            sealed.append(spec if properties is spec.properties else spec.model_copy(update={"properties": properties}))
        # The graph found while parsing goes on with the sealed list (issue 12, bug 4).
        return with_graph(specs, sealed)

    def parse_full(self, document: Any, *, default_region: str) -> list[ResourceSpec]:
        """Parse a full desired-state document, every finding in one answer.

        Raises:
            ValidationFailed: VALIDATION_001 listing every finding (references, names, cycles and
                the property findings of what did parse).
        """
        with _collector_paused():
            problems: list[Finding] = []
            specs = parse_desired_state(document, self.catalog, default_region=default_region, problems=problems)
            if problems:
                raise_findings(self._with_property_findings(document, specs, problems), "desired state")
            return specs

    def draft(
        self,
        *,
        project_id: str,
        user: str,
        description: str,
        kind: Literal["full", "partial", "rollback"],
        desired: list[ResourceSpec],
        current: StateFile | None,
        full: bool,
        delete: tuple[str, ...] = (),
    ) -> Plan:
        """The plan, computed and not stored: values converted and sealed, then the pure planner.

        This is CPU work only; ``benchmarks/plan_scaling.py`` times it with :meth:`parse_full`.

        Raises:
            ValidationFailed: VALIDATION_001 listing every error finding; nothing is planned.
        """
        with _collector_paused():
            return make_plan(
                project_id=project_id,
                plan_id=new_plan_id(),
                author=user,
                description=description,
                kind=kind,
                desired=self._seal(desired, current),
                current=current,
                catalog=self.catalog,
                full=full,
                pricing=self.pricing,
                lint=self.lint,
                delete=delete,
            )

    def _seal_value(self, value: Any) -> Any:
        # A reference is no secret: sealing it would hide the dependency from the graph and send
        # the literal {"Ref": ...} to AWS. It stays visible; what it resolves to is AWS's business.
        if is_sealed(value) or is_secret_digest(value) or value is None or is_symbolic(value):
            return value
        return self.sealer.seal(value)

    def _reseal(self, node: Any) -> Any:
        if isinstance(node, dict):
            if is_sealed(node):
                return self.sealer.seal(self.sealer.unseal(node))
            changed = {k: self._reseal(v) for k, v in node.items()}
            return node if all(changed[k] is node[k] for k in node) else changed
        if isinstance(node, list):
            items = [self._reseal(v) for v in node]
            return node if all(a is b for a, b in zip(items, node, strict=True)) else items
        return node

    def _with_property_findings(
        self, document: Any, specs: list[ResourceSpec], problems: list[Finding]
    ) -> list[Finding]:
        """``problems`` (references, names, cycles) with the property findings of what did parse.

        One answer lists everything, every location in the document's own terms
        (``/resources/<index>/properties/...``); a property cfn-lint flags only because its
        reference dangles is already among ``problems`` and is not repeated.
        """
        index = {
            entry.get("name"): i for i, entry in enumerate(document.get("resources", [])) if isinstance(entry, dict)
        }
        checked = self._seal(specs)
        found = list(problems)
        known = [p.path for p in problems]
        for finding in validate_specs(checked, self.catalog, lint=self.lint):
            where = index.get(finding.resource)
            if where is None or not finding.path.startswith("/properties"):
                continue
            path = f"/resources/{where}{finding.path}"
            if any(path == k or path.startswith(k + "/") for k in known):
                continue
            found.append(finding.model_copy(update={"path": path}))
        found.sort(key=lambda f: _position(f.path))
        return found

    async def _make(
        self,
        project: Project,
        *,
        user: str,
        description: str,
        kind: Literal["full", "partial", "rollback"],
        desired: list[ResourceSpec],
        current: StateFile | None,
        full: bool,
        delete: tuple[str, ...] = (),
        extra_findings: list[Finding] | None = None,
        outputs: dict[str, Any] | None = None,
        quiet: frozenset[tuple[str, str, str]] = frozenset(),
        adjust: Callable[[Plan], Plan] | None = None,
    ) -> Plan:
        plan = self.draft(
            project_id=project.id,
            user=user,
            description=description,
            kind=kind,
            desired=desired,
            current=current,
            full=full,
            delete=delete,
        )
        if outputs:
            plan = plan.model_copy(update={"outputs": outputs})
        if quiet:
            kept = [f for f in plan.findings if (f.resource or "", f.path, f.rule) not in quiet]
            plan = plan.model_copy(update={"findings": kept})
        blocking = _secrets_needed(plan)
        if extra_findings or blocking:
            findings = [*(extra_findings or []), *blocking]
            if any(f.severity == "error" for f in findings):
                raise_findings(findings, "plan")
            plan = plan.model_copy(update={"findings": [*plan.findings, *findings]})
        if adjust is not None:
            plan = adjust(plan)
        return await self.record(project, plan, user=user)

    async def record(self, project: Project, plan: Plan, *, user: str) -> Plan:
        """Sign ``plan`` with the server key and store it with its audit line (both or neither)."""
        record = AuditEvent(
            project_id=project.id,
            actor=user,
            action="plan.create",
            target=plan.id,
            details={"kind": plan.kind, "summary": plan.summary.text, "risk": plan.risk.value},
        )
        saved = await self.projects.save_plan(self.notary.sign_plan(plan), audit=record)
        log.info("plan_created", project_id=project.id, plan_id=plan.id, kind=plan.kind, summary=plan.summary.text)
        if self.approve_by_rule is not None:
            # One use case: a plan that fits the project's auto-approval rule comes back approved.
            saved = await self.approve_by_rule(saved)
        return saved

    # -- for other planning use cases (templates) ------------------------------------------------

    async def project_to_plan(self, project_id: str, user: str) -> Project:
        """The project, if ``user`` may plan in it.

        Raises:
            NotFound: RESOURCE_001 if there is no such project (or ``user`` is no member).
            AccessDenied: AUTH_001 without the plan permission.
        """
        return await self._project(project_id, user, Permission.PLAN)

    async def project_for_reading(self, project_id: str, user: str) -> Project:
        """The project, if ``user`` may read it.

        Raises:
            NotFound: RESOURCE_001 if there is no such project (or ``user`` is no member).
        """
        return await self._project(project_id, user, Permission.READ)

    async def plan_full(
        self,
        project: Project,
        specs: list[ResourceSpec],
        *,
        description: str,
        user: str,
        notes: list[Finding] | None = None,
        outputs: dict[str, Any] | None = None,
        quiet: frozenset[tuple[str, str, str]] = frozenset(),
    ) -> Plan:
        """Plan ``project`` towards parsed ``specs`` as a full desired state (what it lacks is deleted).

        ``quiet`` names warnings ``(resource, path, rule)`` the caller knows to be false (a
        template's ``Fn::GetAZs`` zones are no hard-coded zones).

        Raises:
            ValidationFailed: VALIDATION_001 listing every finding; nothing is stored.
        """
        current = await self._state(project)
        return await self._make(
            project,
            user=user,
            description=description,
            kind="full",
            desired=specs,
            current=current,
            full=True,
            extra_findings=notes,
            outputs=outputs,
            quiet=quiet,
        )

    def seal(self, value: Any) -> Any:
        """``value`` sealed (a secret about to enter a plan)."""
        return self._seal_value(value)

    # -- use cases -----------------------------------------------------------------------------

    async def plan_changes(
        self, project_id: str, desired_state: Any, description: str, user: str, *, refresh: Refresher | None = None
    ) -> Plan:
        """Plan the project towards a *full* desired state: what it lacks is deleted.

        With ``refresh`` the plan is made against the live resources (what ``refresh`` reads), so
        values changed or resources deleted outside infra-mcp are restored.

        Raises:
            ValidationFailed: VALIDATION_001 listing every finding; nothing is stored.
            AccessDenied: AUTH_001 without the plan permission.
        """
        project = await self._project(project_id, user, Permission.PLAN)
        specs = self.parse_full(desired_state, default_region=project.settings.default_region)
        current = await self._state(project)
        adjust = None
        if refresh is not None:
            refreshed = await refresh(project, current, {s.name for s in specs})
            current, adjust = refreshed.state, refreshed.annotate
        return await self._make(
            project,
            user=user,
            description=description,
            kind="full",
            desired=specs,
            current=current,
            full=True,
            adjust=adjust,
        )

    async def create_resource(
        self,
        project_id: str,
        *,
        name: str,
        type: str,
        properties: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
        region: str | None = None,
        depends_on: list[str] | None = None,
        description: str = "",
        user: str,
    ) -> Plan:
        """A one-change plan creating a resource; references may name existing resources.

        Raises:
            AlreadyExists: CONFLICT_001 if the name is taken (update it with plan_resource).
            ValidationFailed: VALIDATION_001 listing every finding; nothing is stored.
        """
        project = await self._project(project_id, user, Permission.PLAN)
        current = await self._state(project)
        existing = {r.name for r in current.resources} if current is not None else set()
        if name in existing:
            raise AlreadyExists(
                f"A resource named {name!r} already exists in {project_id!r}; use plan_resource with action 'update' to change it.",
                details={"project_id": project_id, "resource": name},
            )
        entry: dict[str, Any] = {"name": name, "type": type, "properties": properties or {}, "tags": tags or {}}
        if region is not None:
            entry["region"] = region
        if depends_on:
            entry["depends_on"] = depends_on
        specs = parse_desired_state(
            {"resources": [entry]},
            self.catalog,
            default_region=project.settings.default_region,
            external_names=existing,
        )
        return await self._make(
            project,
            user=user,
            description=description or f"Create {name}",
            kind="partial",
            desired=specs,
            current=current,
            full=False,
        )

    async def update_resource(
        self,
        project_id: str,
        *,
        resource: str,
        properties: dict[str, Any] | None = None,
        tags: dict[str, str | None] | None = None,
        description: str = "",
        user: str,
    ) -> Plan:
        """A one-change plan updating (or, for create-only properties, replacing) a resource.

        ``properties`` and ``tags`` are merged over what was declared; a ``None`` value removes
        that property or tag.

        Raises:
            NotFound: RESOURCE_001 if no resource has that name, physical id or ARN.
            ValidationFailed: VALIDATION_001 listing every finding; nothing is stored.
        """
        project = await self._project(project_id, user, Permission.PLAN)
        current = await self._state(project)
        target = _find(current, resource, project_id)
        if properties is not None and not isinstance(properties, dict):
            raise ValidationFailed(
                "'properties' must be an object. Pass property names with their new values, e.g. "
                '{"CidrBlock": "10.0.0.0/16"}; null removes a property.',
                details={"field": "properties"},
            )
        if tags is not None and not isinstance(tags, dict):
            raise ValidationFailed(
                "'tags' must be an object. Pass tag keys with their new values, e.g. "
                '{"Environment": "dev"}; null removes a tag.',
                details={"field": "tags"},
            )
        merged = _merge(_declared(target), properties or {})
        merged_tags = _merge(target.tags, tags or {})
        assert current is not None  # _find found the resource in it
        entry = {
            "name": target.name,
            "type": target.type,
            "region": target.region,
            "properties": merged,
            "tags": merged_tags,
            "depends_on": list(target.depends_on),
        }
        # Everything else is passed as it was declared, so a replacement here cascades to the
        # resources that refer to it (a subnet's new id forces its instances to be replaced too);
        # unchanged ones are no-ops and the plan stays partial (nothing absent is deleted).
        others = [_entry_of(r) for r in current.resources if r.name != target.name and r.declared]
        specs = parse_desired_state(
            {"resources": [entry, *others]},
            self.catalog,
            default_region=target.region,
            external_names={r.name for r in current.resources},
        )
        return await self._make(
            project,
            user=user,
            description=description or f"Update {target.name}",
            kind="partial",
            desired=specs,
            current=current,
            full=False,
        )

    async def delete_resource(self, project_id: str, *, resource: str, description: str = "", user: str) -> Plan:
        """A one-change plan deleting a resource (refused while another resource refers to it).

        Raises:
            NotFound: RESOURCE_001 if no resource has that name, physical id or ARN.
            ValidationFailed: VALIDATION_001 if something still refers to it; nothing is stored.
        """
        project = await self._project(project_id, user, Permission.PLAN)
        current = await self._state(project)
        target = _find(current, resource, project_id)
        return await self._make(
            project,
            user=user,
            description=description or f"Delete {target.name}",
            kind="partial",
            desired=[],
            current=current,
            full=False,
            delete=(target.name,),
        )

    async def plan_rollback(
        self, project_id: str, to_version: int, user: str, description: str = "", *, refresh: Refresher | None = None
    ) -> Plan:
        """Plan AWS back to what history version ``to_version`` declared (kind ``rollback``).

        Secrets are not kept in state, only their digests: a secret that differs from the
        current one cannot be rolled back and keeps its current value (a warning says so); a
        resource that must be re-created with a secret is refused (an error says which).

        Raises:
            NotFound: RESOURCE_001 if the version does not exist.
            ValidationFailed: VALIDATION_001 listing every finding; nothing is stored.
        """
        project = await self._project(project_id, user, Permission.PLAN)
        if not isinstance(to_version, int) or isinstance(to_version, bool) or to_version < 1:
            raise ValidationFailed(
                "to_version must be a state serial >= 1. Call get_state_history to list the versions.",
                details={"field": "to_version"},
            )
        store = self.states.for_project(project)
        version = await store.read_version(project_id, to_version)
        current = await self._state(project)
        adjust = None
        if refresh is not None:
            refreshed = await refresh(project, current, {r.name for r in version.resources})
            current, adjust = refreshed.state, refreshed.annotate
        now = {r.name: r for r in current.resources} if current is not None else {}
        specs: list[ResourceSpec] = []
        notes: list[Finding] = []
        for old in version.resources:
            properties = _keep_current_secrets(old, now.get(old.name), notes)
            specs.append(
                ResourceSpec(
                    name=old.name,
                    type=old.type,
                    region=old.region,
                    properties=properties,
                    tags=dict(old.tags),
                    depends_on=list(old.depends_on),
                )
            )
        return await self._make(
            project,
            user=user,
            description=description or f"Roll back to state version {to_version}",
            kind="rollback",
            desired=specs,
            current=current,
            full=True,
            extra_findings=notes,
            adjust=adjust,
        )

    async def get_plan(self, plan_id: str, user: str) -> Plan:
        """A plan, if ``user`` may read its project.

        Raises:
            NotFound: RESOURCE_001.
        """
        if not isinstance(plan_id, str) or not _PLAN_ID.fullmatch(plan_id):
            raise NotFound(
                f"No plan {str(plan_id)[:40]!r}: plan ids look like 'plan-0123456789ab'. Use list_plans.",
                details={"plan_id": str(plan_id)[:40]},
            )
        plan = await self.projects.get_plan(plan_id)
        await self._project(plan.project_id, user, Permission.READ)
        if self.settle is not None:
            await self.settle(plan.project_id)
            plan = await self.projects.get_plan(plan_id)
        return plan

    async def list_plans(self, project_id: str, user: str, status: PlanStatus | str | None = None) -> list[Plan]:
        """The project's plans, newest first, optionally of one status."""
        await self._project(project_id, user, Permission.READ)
        if self.settle is not None:
            await self.settle(project_id)
        statuses = None
        if status is not None:
            try:
                statuses = [PlanStatus(status)]
            except ValueError:
                raise ValidationFailed(
                    f"Unknown plan status {str(status)[:30]!r}; use one of {[s.value for s in PlanStatus]}.",
                    details={"field": "status"},
                ) from None
        return await self.projects.list_plans(project_id, statuses=statuses)

    @staticmethod
    def render(plan: Plan) -> str:
        """The plan as terraform-plan-like text."""
        return render_plan(plan)


def _position(path: str) -> tuple[int, str]:
    parts = path.split("/")
    return (int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else -1), path


def _find(current: StateFile | None, resource: str, project_id: str) -> StateResource:
    if current is not None:
        for candidate in current.resources:
            if resource in (candidate.name, candidate.id, candidate.arn):
                return candidate
    raise NotFound(
        f"No resource {str(resource)[:80]!r} in project {project_id!r}; use list_resources to see what exists.",
        details={"project_id": project_id, "resource": str(resource)[:80]},
    )


def _entry_of(resource: StateResource) -> dict[str, Any]:
    """A state resource as the desired-state entry that would leave it unchanged."""
    return {
        "name": resource.name,
        "type": resource.type,
        "region": resource.region,
        "properties": dict(resource.declared),
        "tags": dict(resource.tags),
        "depends_on": list(resource.depends_on),
    }


def _declared(resource: StateResource) -> dict[str, Any]:
    """A copy of the properties the resource was declared with (never what AWS reported)."""
    return dict(resource.declared)


def _merge(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _has_digest(node: Any) -> bool:
    if is_secret_digest(node):
        return True
    if isinstance(node, dict):
        return any(_has_digest(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_digest(v) for v in node)
    return False


def _secrets_needed(plan: Plan) -> list[Finding]:
    """A resource created anew cannot be given a secret we only know the digest of."""
    findings: list[Finding] = []
    for change in plan.changes:
        if change.action not in (Action.CREATE, Action.REPLACE) or change.desired is None:
            continue
        for key, value in change.desired.properties.items():
            if _has_digest(value):
                findings.append(
                    Finding(
                        resource=change.name,
                        path=f"/properties/{key}",
                        rule="secret-needed",
                        message=f"{change.name} is {change.action.value}d and needs the value of secret {key}, which "
                        "is not stored anywhere; pass it in properties.",
                    )
                )
    return findings


def _keep_current_secrets(old: StateResource, now: StateResource | None, notes: list[Finding]) -> dict[str, Any]:
    properties = dict(old.declared)
    for key, value in old.declared.items():
        if not is_secret_digest(value):
            continue
        present = now.declared.get(key) if now is not None else None
        if present is not None and present != value:
            properties[key] = present
            notes.append(
                Finding(
                    severity="warning",
                    resource=old.name,
                    path=f"/properties/{key}",
                    rule="secret-not-rolled-back",
                    message=f"{key} is a secret; only its digest is kept, so it keeps its current value.",
                )
            )
    return properties

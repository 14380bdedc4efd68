"""Execute an approved plan (DESIGN §4): refuse precisely, lock, walk, record every result.

Order of business in :meth:`ExecutionService.execute`:

1. checks that need no lock: role, status, approval, expiry, fingerprint (each refusal audited);
2. the project's state lock (a second execution is refused with STATE_003), renewed while running;
3. anything an earlier, interrupted execution left in the journal is reconciled first;
4. the plan must still be fresh against the state (else PLAN_001, and it is superseded);
4b. the upstream must answer one cheap call (else AWS_MCP_001: nothing was sent, the plan stays approved);
5. compare-and-set approved -> executing (of two racing executions exactly one gets here);
6. the walk (``walk``), checkpoints and journal (``ledger``);
7. the plan ends ``executed`` or ``failed`` with each change's outcome; plans made against the
   old state are superseded; the audit log gets the outcome.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import anyio
import structlog

from infra_mcp.domain import approval_rules as rules
from infra_mcp.domain import execution_rules
from infra_mcp.domain.audit import AuditEvent
from infra_mcp.domain.common import utcnow
from infra_mcp.domain.execution_graph import Node, build_graph
from infra_mcp.domain.integrity import Notary
from infra_mcp.domain.payload import UnresolvedReference, resolve
from infra_mcp.domain.plan import (
    KNOWN_AFTER_APPLY,
    Action,
    ChangeOutcome,
    ChangeOutcomeStatus,
    ExecutionRecord,
    Plan,
    PlanStatus,
    final_description,
)
from infra_mcp.domain.project import Permission, Project
from infra_mcp.domain.state import LockInfo, StateFile, StateResource
from infra_mcp.domain.type_catalog import TypeCatalog
from infra_mcp.errors import (
    ApprovalExpired,
    InfraError,
    IntegrityFailed,
    PlanStale,
    PlanStatusInvalid,
    StateLocked,
    UpstreamUnavailable,
)
from infra_mcp.ports import ProgressReporter, ProjectStore, StateStore, StateStores, Upstream
from infra_mcp.services.audit import RefusalGate
from infra_mcp.services.execution.ledger import Ledger
from infra_mcp.services.execution.operations import CloudControlCalls, NodeRunner, PollPolicy, Sleep
from infra_mcp.services.execution.reconcile import Reconciler, ReconcileReport, supersede_others
from infra_mcp.services.execution.walk import Walk
from infra_mcp.services.secrets import SecretSealer

log = structlog.get_logger(__name__)


def _single(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception inside nested single-member groups, or the group itself."""
    inner: BaseException = group
    while isinstance(inner, BaseExceptionGroup) and len(inner.exceptions) == 1:
        inner = inner.exceptions[0]
    return inner


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (in doubt: alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, owned by someone else; anything else: do not guess
        return True
    return True


def dead_local_holder(owner: str, *, hostname: str, alive: Callable[[int], bool] = pid_alive) -> bool:
    """True only if ``owner`` (``user@host:pid:nonce``, see :func:`_holder`) names a process on
    ``hostname`` that is not running. Another host, an unparsable owner or a live pid: False."""
    _, at, holder = owner.rpartition("@")
    parts = holder.rsplit(":", 2)
    if not at or len(parts) != 3:
        return False
    host, pid, _nonce = parts
    if host != hostname or not pid.isdigit() or int(pid) <= 0:
        return False
    return not alive(int(pid))


class ExecutionService:
    """Runs approved plans against Cloud Control and keeps the state truthful.

    Args:
        projects: Plans, projects, audit log.
        states: State store per project.
        upstream: Cloud Control through the upstream AWS MCP server.
        catalog: Resource type knowledge (identifiers, tags, create-only/write-only paths).
        sealer: Opens sealed secrets right before they are sent.
        notary: Checks the plan's and the approval's server-key MACs before anything runs.
        parallelism: Most Cloud Control operations in flight at once.
        lease_seconds: State lock lease; renewed every third of it while running.
        checkpoint_interval: Seconds between state checkpoints at most (plus one per ``checkpoint_every``).
        checkpoint_every: Results after which a checkpoint is written regardless of time.
        poll: Polling and throttling policy.
        clock: Current time (approval expiry, timestamps, checkpoint pacing).
        sleep: Used for every wait on Cloud Control (injected so tests need no real sleeps).
        process_alive: Whether a pid runs on this host; a state lock whose holder is a process of
            this host that no longer runs is broken instead of waited out (see :meth:`_lock`).
        refusals: Decides which refusals are audited (members only, rate-limited); shared with approvals.
        heartbeat_seconds: While changes run, a progress message every this many seconds names them.
    """

    def __init__(
        self,
        projects: ProjectStore,
        states: StateStores,
        upstream: Upstream,
        catalog: TypeCatalog,
        sealer: SecretSealer,
        *,
        notary: Notary,
        parallelism: int = 10,
        lease_seconds: float = 60.0,
        checkpoint_interval: float = 2.0,
        checkpoint_every: int = 25,
        poll: PollPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
        sleep: Sleep = anyio.sleep,
        process_alive: Callable[[int], bool] = pid_alive,
        refusals: RefusalGate | None = None,
        heartbeat_seconds: float | None = 15.0,
    ) -> None:
        self.projects = projects
        self.states = states
        self.upstream = upstream
        self.catalog = catalog
        self.sealer = sealer
        self.notary = notary
        self.parallelism = parallelism
        self.lease_seconds = lease_seconds
        self.checkpoint_interval = checkpoint_interval
        self.checkpoint_every = checkpoint_every
        self.poll = poll or PollPolicy()
        self.clock = clock
        self.sleep = sleep
        self.process_alive = process_alive
        self.refusals = refusals or RefusalGate(projects, clock=clock)
        self.heartbeat_seconds = heartbeat_seconds

    def _calls(self) -> CloudControlCalls:
        return CloudControlCalls(self.upstream, self.catalog, self.sealer, self.poll, self.sleep)

    def _reconciler(self) -> Reconciler:
        return Reconciler(self.projects, self._calls(), clock=self.clock)

    # ---- public API -----------------------------------------------------------------------

    async def execute(self, plan_id: str, user: str, progress: ProgressReporter | None = None) -> Plan:
        """Execute an approved plan; return it ``executed`` or ``failed`` with every change's outcome.

        Raises:
            NotFound: RESOURCE_001, no such plan.
            AccessDenied: AUTH_001, the user's role lacks ``execute``.
            ApprovalRequired: APPROVAL_002, the plan is not approved yet.
            PlanStatusInvalid: PLAN_003, rejected/expired/executed/failed/superseded/executing, or a lost race.
            ApprovalExpired: APPROVAL_001, the approval ran out (the plan becomes ``expired``).
            PlanTampered: PLAN_002, the plan changed after approval.
            IntegrityFailed: INTEGRITY_001, the plan or its approval was not signed by this server's key.
            StateLocked: STATE_003, another execution (or restore) holds the project's state.
            PlanStale: PLAN_001, the state moved since the plan was made (the plan becomes ``superseded``).
        """
        plan = await self.projects.get_plan(plan_id)
        project = await self.projects.get_project(plan.project_id)
        bound = log.bind(project_id=project.id, plan_id=plan.id, user=user)
        await self._refusing(plan, user, self._precheck(plan, project, user))
        store = self.states.for_project(project)
        try:
            lock = await self._lock(store, project.id, user=user, operation=f"execute {plan.id}")
        except StateLocked as exc:
            await self._audit(plan, user, "plan.execute", "refused", code=exc.code, reason="state locked")
            raise
        bound.info("execution_lock_acquired")
        try:
            async with anyio.create_task_group() as keeper:
                keeper.start_soon(self._keep_lease, store, project.id, lock)
                try:
                    done = await self._execute_locked(plan.id, project, store, user, progress)
                finally:
                    keeper.cancel_scope.cancel()
            return done
        except BaseExceptionGroup as group:
            # The task groups are an implementation detail: callers catch InfraError, not groups.
            raise _single(group) from None
        finally:
            with anyio.CancelScope(shield=True):
                await store.release_lock(project.id, lock)
            bound.info("execution_lock_released")

    async def reconcile(self, project_id: str, *, user: str = "infra-mcp:reconcile") -> ReconcileReport:
        """Resolve what an interrupted execution left in flight, under the project's state lock.

        Raises:
            StateLocked: STATE_003 while an execution holds the lock.
        """
        project = await self.projects.get_project(project_id)
        store = self.states.for_project(project)
        lock = await self._lock(store, project_id, user=user, operation="reconcile")
        try:
            return await self._reconciler().reconcile(project, store, user=user)
        finally:
            with anyio.CancelScope(shield=True):
                await store.release_lock(project_id, lock)

    async def reconcile_all(self) -> list[ReconcileReport]:
        """At server start: reconcile every project with journal entries or a plan stuck ``executing``.

        A lock left by a dead server process of this host is broken (see :meth:`_lock`). A project
        whose lock is held otherwise (an execution elsewhere, or a lease of another host not yet
        expired after a crash) is skipped with a warning; its next execution reconciles it.
        """
        reports = []
        for project in await self.projects.list_projects():
            try:
                report = await self.reconcile_if_needed(project.id)
            except StateLocked:
                log.warning("reconcile_skipped_locked", project_id=project.id)
            except InfraError as exc:
                log.error("reconcile_failed", project_id=project.id, code=exc.code)
            else:
                if report is not None:
                    reports.append(report)
        return reports

    async def reconcile_if_needed(self, project_id: str) -> ReconcileReport | None:
        """Reconcile ``project_id`` if its journal has entries or one of its plans is stuck ``executing``.

        Returns:
            The report, or None when there was nothing to reconcile.

        Raises:
            StateUnavailable: STATE_004, the project's storage does not answer.
            StateLocked: STATE_003 while another holder has the project's state lock.
        """
        project = await self.projects.get_project(project_id)
        store = self.states.for_project(project)
        if not await self._needs_reconcile(project, store):
            return None
        return await self.reconcile(project.id)

    # ---- the state lock --------------------------------------------------------------------

    async def _lock(self, store: StateStore, project_id: str, *, user: str, operation: str) -> LockInfo:
        """Take the project's state lock; one left by a dead process of this host is broken first.

        A crashed server's lease would otherwise block the project until it expires. Only a holder
        named ``user@<this host>:<pid>:...`` whose pid does not run here is considered dead: a live
        process, another host or an unparsable owner keeps its lock (STATE_003 is raised as usual).

        Raises:
            StateLocked: STATE_003 while another (live, or not provably dead) holder has the lock.
        """
        owner = f"{user}@{_holder()}"
        try:
            return await store.acquire_lock(
                project_id, owner=owner, operation=operation, lease_seconds=self.lease_seconds
            )
        except StateLocked as exc:
            dead = self._dead_holders_lock(exc)
            if dead is None:
                raise
        # Released by its lock_id only: if anyone took the lock meanwhile, theirs is left alone.
        await store.release_lock(project_id, dead)
        log.warning(
            "state_lock_broken_dead_holder",
            project_id=project_id,
            previous_owner=dead.owner,
            previous_operation=dead.operation,
            previous_expires_at=dead.expires_at.isoformat(),
            lock_id=dead.lock_id,
        )
        await self.projects.append_audit(
            AuditEvent(
                project_id=project_id,
                at=self.clock(),
                actor=user,
                action="state.lock_break",
                target=dead.lock_id,
                outcome="ok",
                details={
                    "previous_owner": dead.owner,
                    "previous_operation": dead.operation,
                    "previous_expires_at": dead.expires_at.isoformat(),
                    "reason": "the holder process no longer runs on this host",
                    "for": operation,
                },
            )
        )
        return await store.acquire_lock(project_id, owner=owner, operation=operation, lease_seconds=self.lease_seconds)

    def _dead_holders_lock(self, refusal: StateLocked) -> LockInfo | None:
        """The lock named in ``refusal`` if its holder is a dead process of this host, else None."""
        details = refusal.details
        owner, lock_id = details.get("owner"), details.get("lock_id")
        if not isinstance(owner, str) or not isinstance(lock_id, str) or not lock_id:
            return None
        if not dead_local_holder(owner, hostname=socket.gethostname(), alive=self.process_alive):
            return None
        try:
            expires_at = datetime.fromisoformat(str(details.get("expires_at")))
        except ValueError:
            expires_at = self.clock()
        return LockInfo(
            lock_id=lock_id,
            owner=owner,
            operation=str(details.get("operation", "")),
            acquired_at=self.clock(),  # unknown, and unused by a release
            expires_at=expires_at,
        )

    # ---- refusals -------------------------------------------------------------------------

    async def _precheck(self, plan: Plan, project: Project, user: str) -> None:
        project.require(user, Permission.EXECUTE)
        await self._require_valid_approval(plan, project)

    async def _require_valid_approval(self, plan: Plan, project: Project) -> None:
        """Status, expiry, fingerprint, the server key's MACs, and the approval's current grounds."""
        now = self.clock()
        try:
            fingerprint = None
            if plan.status is PlanStatus.APPROVED:
                # First: any edit of an approved row outside infra-mcp is INTEGRITY_001, whatever it changed.
                fingerprint = self._require_genuine(plan)
            if plan.status in (PlanStatus.PENDING, PlanStatus.APPROVED):
                rules.require_has_changes(plan, action="execute")
            execution_rules.require_executable(plan, now, fingerprint=fingerprint)
            rules.require_grounds_hold(plan, project, now)
        except ApprovalExpired:
            with contextlib.suppress(PlanStatusInvalid):
                await self.projects.update_plan(plan.expire(), expected_status=PlanStatus.APPROVED)
            raise

    def _require_genuine(self, plan: Plan) -> str:
        """The plan's fresh fingerprint, if both its content and its approval carry this server's MAC."""
        verdict = self.notary.verify(plan)
        if verdict.plan_genuine and verdict.approval_genuine:
            return verdict.fingerprint
        which = "plan" if not verdict.plan_genuine else "approval"
        raise IntegrityFailed(
            f"Plan {plan.id} will not run: its {which} does not carry this server's signature, so it was written "
            "or edited outside infra-mcp. Nothing was sent to AWS. Tell the project's owner (the database may have "
            "been tampered with), then make a new plan and have it approved.",
            details={"plan_id": plan.id, "reason": f"{which}_signature_mismatch"},
        )

    async def _refusing(self, plan: Plan, user: str, check: Any) -> None:
        try:
            await check
        except InfraError as exc:
            await self._audit(plan, user, "plan.execute", "refused", code=exc.code, reason=exc.message)
            log.info("execution_refused", project_id=plan.project_id, plan_id=plan.id, code=exc.code)
            raise

    async def _needs_reconcile(self, project: Project, store: StateStore) -> bool:
        journal = await store.read_journal(project.id)
        if journal.entries:
            return True
        return bool(await self.projects.list_plans(project.id, statuses=[PlanStatus.EXECUTING], limit=1))

    # ---- the locked part ------------------------------------------------------------------

    async def _keep_lease(self, store: StateStore, project_id: str, lock: LockInfo) -> None:
        while True:
            await anyio.sleep(self.lease_seconds / 3)
            try:
                lock = await store.renew_lock(project_id, lock, lease_seconds=self.lease_seconds)
            except InfraError as exc:
                log.error("lock_renewal_failed", project_id=project_id, code=exc.code)

    async def _execute_locked(
        self, plan_id: str, project: Project, store: StateStore, user: str, progress: ProgressReporter | None
    ) -> Plan:
        if await self._needs_reconcile(project, store):
            # We hold the lock, so anything in flight or 'executing' was left by an interrupted run.
            await self._reconciler().reconcile(project, store, user=user, spare_plan=plan_id)
        plan = await self.projects.get_plan(plan_id)
        state = await store.read(project.id) or StateFile.empty(project.id)
        await self._refusing(plan, user, self._fresh(plan, project, state, user))
        await self._refusing(plan, user, self._upstream_answers(plan))
        nodes = build_graph(plan, state.resources)  # a cycle is refused here, before anything is sent
        started = self.clock()
        outcomes = {c.name: ChangeOutcome(name=c.name, action=c.action) for c in plan.actionable_changes}
        record = ExecutionRecord(started_at=started, executed_by=user, outcomes=list(outcomes.values()))
        try:
            plan = await self.projects.update_plan(plan.start(record), expected_status=PlanStatus.APPROVED)
        except PlanStatusInvalid as exc:
            await self._audit(plan, user, "plan.execute", "refused", code=exc.code, reason="lost race")
            raise
        await self._audit(plan, user, "plan.execute", "started", changes=len(outcomes))
        log.info("execution_started", project_id=project.id, plan_id=plan.id, changes=len(outcomes))
        return await self._run(plan, project, store, state, user, nodes, outcomes, progress)

    async def _upstream_answers(self, plan: Plan) -> None:
        """The upstream takes changes as configured, and answers one cheap call (STS GetCallerIdentity).

        An upstream that cannot be reached, or whose circuit breaker is open (that refusal is
        immediate), would fail every change with nothing sent; marking the plan ``failed`` then
        would cost a person another approval for no reason. So the plan stays ``approved``.

        Raises:
            UpstreamRefusesChanges: AWS_MCP_004, the upstream runs read-only or asks its own consent.
            UpstreamUnavailable: AWS_MCP_001 with ``details["nothing_sent"]``; retry once
                get_server_status is healthy.
        """
        changes = [c for c in plan.actionable_changes if not c.record_only]
        if not changes and plan.actionable_changes:
            return  # accepted drift only: the record changes, AWS is not called at all
        refusal = self.upstream.change_refusal()
        if refusal is not None and any(c.action is not Action.IMPORT for c in changes):  # an import only reads
            refusal.details.update(plan_id=plan.id, plan_status=plan.status.value, nothing_sent=True)
            raise refusal
        region = changes[0].region if changes else "us-east-1"
        try:
            await self.upstream.caller_identity(region=region)
        except UpstreamUnavailable as exc:
            raise UpstreamUnavailable(
                f"The upstream AWS MCP server cannot be reached, so nothing was sent to AWS and plan {plan.id} "
                f"is still approved. {exc.message} Check get_server_status, then call execute_plan again.",
                details={**exc.details, "plan_id": plan.id, "plan_status": plan.status.value, "nothing_sent": True},
            ) from None

    async def _fresh(self, plan: Plan, project: Project, state: StateFile, user: str) -> None:
        await self._require_valid_approval(plan, project)
        try:
            execution_rules.require_fresh(plan, state.serial, state.lineage)
        except PlanStale:
            with contextlib.suppress(PlanStatusInvalid):
                await self.projects.update_plan(plan.supersede(), expected_status=plan.status)
            raise

    async def _run(
        self,
        plan: Plan,
        project: Project,
        store: StateStore,
        state: StateFile,
        user: str,
        nodes: dict[str, Node],
        outcomes: dict[str, ChangeOutcome],
        progress: ProgressReporter | None,
    ) -> Plan:
        if state.serial == 0 and plan.base_lineage:
            state = state.model_copy(update={"lineage": plan.base_lineage})

        async def save_outcomes(_: StateFile) -> None:
            # Shallow copies: only the outcomes change, and a deep copy of 200 changes per checkpoint
            # costs more CPU than the rest of the checkpoint.
            assert plan.execution is not None
            execution = plan.execution.model_copy(update={"outcomes": [o.model_copy() for o in outcomes.values()]})
            await self.projects.update_plan(plan.with_execution(execution), expected_status=PlanStatus.EXECUTING)

        ledger = Ledger(
            store,
            state,
            plan_id=plan.id,
            user=user,
            clock=self.clock,
            interval=self.checkpoint_interval,
            every=self.checkpoint_every,
            after_write=save_outcomes,
        )
        await ledger.load_journal()
        initial = {r.name: r for r in state.resources}
        operations = NodeRunner(plan, self._calls(), ledger, initial, self.clock)
        walk = Walk(
            nodes,
            operations,
            ledger,
            outcomes,
            parallelism=self.parallelism,
            clock=self.clock,
            progress=progress,
            heartbeat=self.heartbeat_seconds,
        )
        try:
            await walk.run()
        except anyio.get_cancelled_exc_class():
            # Cut short (a server stopping past its grace): keep what was settled as a checkpoint, so the
            # state says what exists; requests still in flight stay in the journal for reconciliation.
            await ledger.checkpoint_on_cancel()
            raise
        ledger.record_outputs(
            outputs_after(plan, ledger.outputs, ledger.resources, region=project.settings.default_region)
        )
        final = await ledger.flush(description=final_description(plan), final=True)
        done = await self._finish(plan, project, store, final, user, outcomes)
        if any(o.in_doubt for o in outcomes.values()):
            done = await self._reconcile_at_once(done, project, store, user)
        return done

    async def _reconcile_at_once(self, plan: Plan, project: Project, store: StateStore, user: str) -> Plan:
        """Settle the requests that went unanswered now, while we still hold the lock.

        Left for later, the state would lack resources that exist, the next plan would propose them
        again, and its approval would be wasted on a PLAN_001 once reconciliation moved the state.
        An upstream still unreachable leaves them in the journal (and the outcomes in doubt).
        """
        try:
            # One cheap call first: a dead upstream would otherwise cost a whole deadline per request.
            await self.upstream.caller_identity(region=next(iter(plan.actionable_changes)).region)
            report = await self._reconciler().reconcile(project, store, user=user)
        except InfraError as exc:
            log.warning("reconcile_at_once_failed", project_id=project.id, plan_id=plan.id, code=exc.code)
            return plan
        log.info("reconciled_at_once", project_id=project.id, plan_id=plan.id, unresolved=report.unresolved)
        return await self.projects.get_plan(plan.id)

    async def _finish(
        self,
        plan: Plan,
        project: Project,
        store: StateStore,
        final: StateFile,
        user: str,
        outcomes: dict[str, ChangeOutcome],
    ) -> Plan:
        assert plan.execution is not None
        execution = plan.execution.model_copy(
            update={"finished_at": self.clock(), "outcomes": list(outcomes.values()), "final_serial": final.serial}
        )
        finished = plan.finish(execution)
        succeeded = finished.status is PlanStatus.EXECUTED
        counts = {s.value: sum(1 for o in outcomes.values() if o.status is s) for s in ChangeOutcomeStatus}
        outcome_event = self._event(
            plan,
            user,
            "plan.execute",
            "ok" if succeeded else "failed",
            final_serial=final.serial,
            outcomes={k: v for k, v in counts.items() if v},
            failed=[
                {"name": o.name, "error_code": o.error_code}
                for o in outcomes.values()
                if o.status is ChangeOutcomeStatus.FAILED
            ][:50],
        )
        done = await self.projects.update_plan(finished, expected_status=PlanStatus.EXECUTING, audit=outcome_event)
        if final.serial != plan.base_serial:
            await supersede_others(self.projects, project.id, final, except_plan=plan.id)
        log.info("execution_finished", project_id=project.id, plan_id=plan.id, status=done.status.value, **counts)
        return done

    def _event(self, plan: Plan, actor: str, action: str, outcome: str, **details: Any) -> AuditEvent:
        return AuditEvent.about_plan(plan, actor=actor, action=action, outcome=outcome, at=self.clock(), **details)

    async def _audit(self, plan: Plan, actor: str, action: str, outcome: str, **details: Any) -> None:
        await self.refusals.append(self._event(plan, actor, action, outcome, **details))


def outputs_after(
    plan: Plan, kept: dict[str, Any] | None, resources: Mapping[str, StateResource], *, region: str
) -> dict[str, Any] | None:
    """The outputs the state written by ``plan`` keeps, resolved against the resources it recorded.

    A full plan states the whole desired state, Outputs included: its outputs replace those kept,
    and a full plan without any (``plan_changes``, or a template without Outputs) clears them to
    ``{}``. A partial plan or a rollback changes some resources only and declares no outputs: the
    outputs kept stay as they were (resolved when their template's plan executed). An output whose
    resources did not come to exist (a failed create) reads ``(known after apply)``; values made of
    ``NoEcho`` parameters were masked when the template was read.
    """
    if plan.kind != "full":
        return kept
    resolved: dict[str, Any] = {}
    for name, value in plan.outputs.items():
        try:
            resolved[name] = resolve(value, resources, region=region)
        except UnresolvedReference:
            resolved[name] = KNOWN_AFTER_APPLY
    return resolved

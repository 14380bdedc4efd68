"""One Cloud Control operation of an execution: journal it, send it, wait for it, record its result.

:class:`CloudControlCalls` is the conversation with the upstream (throttle retries, polling with backoff);
:class:`NodeRunner` turns one graph node into a journaled request and its result into the ledger.
Reconciliation reuses both: :meth:`NodeRunner.resume` picks up a journaled request token, and
:meth:`NodeRunner.perform` re-issues a request whose token was never learned (same ClientToken, so
Cloud Control answers with the original request if there was one).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import anyio
import structlog

from infra_mcp.domain.cloud import OperationStatus, ProgressEvent
from infra_mcp.domain.desired import declared_properties
from infra_mcp.domain.execution_graph import Node
from infra_mcp.domain.payload import (
    UnresolvedReference,
    client_token,
    dependencies_of,
    resolve,
    strip_write_only,
    update_patch,
)
from infra_mcp.domain.plan import Action, Plan, ResourceSpec
from infra_mcp.domain.policies import snapshot_name, snapshot_step
from infra_mcp.domain.state import JournalEntry, ResourceStatus, StateResource
from infra_mcp.domain.tags import with_tags
from infra_mcp.domain.type_catalog import ResourceTypeInfo, TypeCatalog
from infra_mcp.domain.typefacts import type_facts
from infra_mcp.errors import InfraError, UpstreamThrottled, UpstreamUnavailable
from infra_mcp.ports import Upstream
from infra_mcp.services.accepted import record_accepted, with_live_baseline
from infra_mcp.services.execution.ledger import Ledger
from infra_mcp.services.secrets import SecretSealer

log = structlog.get_logger(__name__)

GONE_CODES = frozenset({"NotFound", "ResourceNotFoundException", "RESOURCE_001"})

T = TypeVar("T")
Sleep = Callable[[float], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class PollPolicy:
    """How to wait on Cloud Control.

    Attributes:
        initial: First delay before polling a request token, seconds.
        factor: Growth of the delay between polls.
        maximum: Longest delay between polls, seconds.
        timeout: Patience for one request, seconds (then its outcome is unknown and left to reconcile).
        throttle_retries: Extra attempts when a ThrottlingException escapes the upstream client's own retries.
        throttle_backoff: First backoff after such a throttle, doubled each time, seconds.
        retry_after_margin: Added to AWS's ``RetryAfter`` (its clock, ours and the timer are not one), seconds.

    AWS's ``RetryAfter`` ("when to next request the status") sets the first poll when the mutation
    answers one, in place of ``initial``; later polls follow the backoff, never sooner than a
    ``RetryAfter`` (so a server that keeps answering one in the past cannot make us spin). No wait
    is longer than ``maximum`` whatever ``RetryAfter`` says (a clock far off AWS's).
    """

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 5.0
    timeout: float = 3600.0
    throttle_retries: int = 6
    throttle_backoff: float = 1.0
    retry_after_margin: float = 0.002


@dataclass
class NodeResult:
    ok: bool
    physical_id: str | None = None
    request_token: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    in_doubt: bool = False


def _failure(exc: InfraError) -> NodeResult:
    code = exc.details.get("aws_error_code") or exc.code
    message = exc.details.get("aws_message") or exc.message
    return NodeResult(False, error_code=str(code), error_message=str(message))


class CloudControlCalls:
    """Talks to Cloud Control for one execution: calls with throttle retries, polls with backoff."""

    def __init__(
        self, upstream: Upstream, catalog: TypeCatalog, sealer: SecretSealer, policy: PollPolicy, sleep: Sleep
    ) -> None:
        self.upstream = upstream
        self.catalog = catalog
        self.sealer = sealer
        self.policy = policy
        self.sleep = sleep

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """``fn()``, retried a bounded number of times if a ThrottlingException still escapes.

        Every mutation carries a ClientToken, so repeating a throttled call cannot duplicate it.
        """
        delay = self.policy.throttle_backoff
        for attempt in range(self.policy.throttle_retries + 1):
            try:
                return await fn()
            except UpstreamThrottled:
                if attempt == self.policy.throttle_retries:
                    raise
                log.warning("throttled_retrying", attempt=attempt + 1, delay=delay)
                await self.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    async def wait(
        self,
        event: ProgressEvent,
        *,
        region: str,
        meanwhile: Callable[[], Coroutine[Any, Any, None]] | None = None,
    ) -> ProgressEvent:
        """Poll the request until SUCCESS/FAILED.

        Args:
            event: The event the mutation answered.
            region: Where the request runs.
            meanwhile: Awaited alongside the first delay and before the first poll (the journal
                write of the request token: durable before we learn the outcome, at no extra latency).

        Raises:
            UpstreamUnavailable: AWS_MCP_001, still running after the policy's timeout (outcome unknown).
        """
        backoff, waited, first = self.policy.initial, 0.0, True
        if event.operation_status.done and meanwhile is not None:
            await meanwhile()
            return event
        while not event.operation_status.done or meanwhile is not None:
            delay = self._delay(event, backoff, first=first)
            first = False
            if waited >= self.policy.timeout:
                raise UpstreamUnavailable(
                    f"Cloud Control request {event.request_token} did not finish in {self.policy.timeout:g}s. "
                    "It continues in AWS and its token stays in the journal: wait a few minutes, then execute "
                    "the project's next plan or restart the server, which asks Cloud Control how it ended first.",
                    details={"request_token": event.request_token},
                )
            if meanwhile is not None:
                try:
                    async with anyio.create_task_group() as both:
                        both.start_soon(meanwhile)
                        both.start_soon(self.sleep, delay)
                except BaseExceptionGroup as group:
                    raise group.exceptions[0] if len(group.exceptions) == 1 else group from None
                meanwhile = None
                if event.operation_status.done:
                    break
            else:
                await self.sleep(delay)
            waited += delay
            event = await self.call(
                functools.partial(self.upstream.get_request_status, event.request_token, region=region)
            )
            backoff = min(self.policy.maximum, backoff * self.policy.factor)
        return event

    def _delay(self, event: ProgressEvent, backoff: float, *, first: bool) -> float:
        """Seconds to wait before the next poll (see :class:`PollPolicy`)."""
        if event.retry_after is None:
            return backoff
        retry_after = event.retry_after if event.retry_after.tzinfo else event.retry_after.replace(tzinfo=UTC)
        hint = (retry_after - datetime.now(UTC)).total_seconds() + self.policy.retry_after_margin
        # Never longer than ``maximum``: a clock far off AWS's must not park the request.
        cap = max(self.policy.maximum, backoff)
        return min(max(hint, 0.0) if first else max(hint, backoff), cap)

    async def describe(self, type_name: str, identifier: str, *, region: str) -> dict[str, Any] | None:
        """The resource's properties as AWS reports them (write-only removed), None if unavailable."""
        try:
            found = await self.call(lambda: self.upstream.get_resource(type_name, identifier, region=region))
        except InfraError as exc:
            log.warning("describe_failed", type=type_name, identifier=identifier, code=exc.code)
            return None
        return strip_write_only(found.properties, type_facts(self.catalog, type_name, region))

    def type_info(self, type_name: str, region: str) -> ResourceTypeInfo:
        return self.catalog.get(type_name, region)


def new_record(
    spec: ResourceSpec,
    physical_id: str,
    properties: dict[str, Any] | None,
    *,
    catalog: TypeCatalog,
    now: datetime,
    created_at: datetime | None = None,
) -> StateResource:
    """The state record of a resource that now exists as ``spec`` declared it."""
    return StateResource(
        id=physical_id,
        name=spec.name,
        type=spec.type,
        region=spec.region,
        arn=_arn(properties),
        properties=properties or {},
        declared=declared_properties(spec, catalog),
        tags=dict(spec.tags),
        depends_on=sorted(dependencies_of(spec.properties, spec.depends_on) - {spec.name}),
        status=ResourceStatus.ACTIVE,
        created_at=created_at or now,
        updated_at=now,
        deletion_policy=spec.deletion_policy,
    )


def _arn(properties: dict[str, Any] | None) -> str | None:
    value = (properties or {}).get("Arn")
    return value if isinstance(value, str) and value.startswith("arn:") else None


def _failed_event(final: ProgressEvent, physical_id: str | None, *, create: bool = False) -> NodeResult:
    """The result of a FAILED request.

    A failed create's event may name a resource (``AlreadyExists`` names the one that is in the way,
    often another owner's): it is not ours, so it is never recorded as the change's physical id.
    """
    identifier = physical_id if create else physical_id or final.identifier
    return NodeResult(False, identifier, final.request_token, final.error_code or "Failed", final.status_message)


class NodeRunner:
    """Performs one node against Cloud Control and records the result in the ledger.

    Args:
        plan: The plan being executed (ClientTokens derive from its id).
        calls: The upstream conversation.
        ledger: Working resources, journal and checkpoints.
        initial: The resources as they were when the execution started: an update's old desired
            properties are resolved against these (what was applied then, not what exists now).
        clock: Current time for the records.
    """

    def __init__(
        self,
        plan: Plan,
        calls: CloudControlCalls,
        ledger: Ledger,
        initial: dict[str, StateResource],
        clock: Callable[[], datetime],
    ) -> None:
        self.plan = plan
        self.calls = calls
        self.ledger = ledger
        self.initial = initial
        self.clock = clock

    def _resolve(self, value: Any, resources: dict[str, StateResource], region: str) -> Any:
        return resolve(value, resources, region=region, type_info=self.calls.type_info)

    def _token(self, node: Node) -> str:
        return client_token(self.plan.id, node.name, node.operation)

    async def perform(self, node: Node) -> NodeResult:
        """Run ``node`` from the start; never raises for an AWS-side failure (it is the result)."""
        try:
            if node.kind == "import":
                return await self._import(node)
            if node.kind == "record":
                error = record_accepted(node.change, self.ledger, self.initial, self.clock())
                return NodeResult(error is None, node.change.physical_id, None, error and "NotFound", error)
            if node.kind == "create":
                return await self._create(node)
            if node.kind == "update":
                return await self._update(node)
            return await self._delete(node)
        except UnresolvedReference as exc:
            return NodeResult(False, error_code=UnresolvedReference.code, error_message=str(exc))
        except InfraError as exc:
            # Before anything was sent (e.g. a sealed secret that no longer opens): a plain failure.
            return _failure(exc)

    async def resume(self, node: Node, entry: JournalEntry) -> NodeResult | None:
        """Finish a journaled request whose token is known; None if it is still not done (entry kept)."""
        assert entry.request_token is not None
        token = entry.request_token
        try:
            event = await self.calls.call(lambda: self.calls.upstream.get_request_status(token, region=entry.region))
            final = await self.calls.wait(event, region=entry.region)
        except InfraError as exc:
            log.warning("reconcile_request_unresolved", node=node.key, code=exc.code)
            return None
        return self._conclude(node, final, entry.client_token, entry.physical_id)

    async def _issue(
        self, node: Node, physical_id: str | None, send: Callable[[str], Awaitable[ProgressEvent]]
    ) -> ProgressEvent | NodeResult:
        """Journal, send, journal the request token, wait; the final event, or why there is none.

        A request whose fate is unknown (upstream unreachable, timed out) keeps its journal entry,
        so reconciliation finds it; one AWS refused outright is settled at once.
        """
        change, token = node.change, self._token(node)
        await self.ledger.journal_add(
            JournalEntry(
                plan_id=self.plan.id,
                name=change.name,
                type=change.type,
                region=change.region,
                operation=node.operation,
                client_token=token,
                physical_id=physical_id,
                started_at=self.clock(),
            )
        )
        try:
            event = await self.calls.call(lambda: send(token))
        except UpstreamUnavailable as exc:
            result = _failure(exc)
            if exc.details.get("outcome_unknown"):
                # The upstream's own retries (same ClientToken, a fresh upstream after a hang) already were
                # the immediate reconciliation; with none of them answered, the truth is "unknown".
                result.error_code, result.in_doubt = exc.code, True
                result.error_message = (
                    f"Outcome unknown: no answer from the upstream, and the request may have reached AWS "
                    f"({exc.message}). It stays in the journal: the next execution of this project, or a server "
                    "restart, reconciles it by its ClientToken first. Check get_server_status before re-planning."
                )
            return result
        except InfraError as exc:
            self.ledger.settle(token)
            return _failure(exc)
        self.ledger.note_request(token, request_token=event.request_token, physical_id=event.identifier)
        try:
            return await self.calls.wait(event, region=change.region, meanwhile=self.ledger.commit_journal)
        except InfraError as exc:
            result = _failure(exc)
            result.request_token = event.request_token
            if isinstance(exc, UpstreamUnavailable):
                # AWS accepted the request; only its end is unknown. The journal keeps the request token.
                result.error_code, result.in_doubt = exc.code, True
                result.error_message = (
                    f"Outcome unknown: Cloud Control accepted request {event.request_token}, but its end could not "
                    f"be learned ({exc.message}). It stays in the journal: the next execution of this project, or a "
                    "server restart, asks Cloud Control how it ended before anything else."
                )
            return result

    def _conclude(self, node: Node, final: ProgressEvent, token: str, physical_id: str | None) -> NodeResult:
        """Record a finished request's result, then settle its journal entry (no await in between)."""
        result = self._record(node, final, physical_id)
        self.ledger.settle(token)
        return result

    def _record(self, node: Node, final: ProgressEvent, physical_id: str | None) -> NodeResult:
        change = node.change
        ok = final.operation_status is OperationStatus.SUCCESS
        if node.kind == "delete":
            if ok or final.error_code in GONE_CODES:
                self.ledger.remove(change.type, physical_id or final.identifier, change.name)
                return NodeResult(True, physical_id, final.request_token)
            return _failed_event(final, physical_id)
        spec = change.desired
        assert spec is not None
        if node.kind == "create":
            if not ok or not final.identifier:
                return _failed_event(final, None, create=True)  # a failed create is not invented into state
            properties = final.resource_model
            if change.action is Action.CREATE and change.physical_id:
                # Re-created after a deletion outside infra-mcp: the record of the gone one goes.
                self.ledger.remove(change.type, change.physical_id, change.name)
            self.ledger.put(
                new_record(spec, final.identifier, properties, catalog=self.calls.catalog, now=self.clock())
            )
            return NodeResult(True, final.identifier, final.request_token)
        old = self.ledger.resources.get(change.name) or self.initial.get(change.name)
        if not ok:
            if old is not None:
                self.ledger.put(old.model_copy(update={"status": ResourceStatus.FAILED, "updated_at": self.clock()}))
            return _failed_event(final, physical_id)
        created = old.created_at if old is not None else None
        properties = final.resource_model if final.resource_model is not None else (old.properties if old else {})
        identifier = physical_id or final.identifier or ""
        self.ledger.put(
            new_record(spec, identifier, properties, catalog=self.calls.catalog, now=self.clock(), created_at=created)
        )
        return NodeResult(True, identifier, final.request_token)

    async def _described(self, final: ProgressEvent, type_name: str, region: str) -> ProgressEvent:
        """``final`` carrying the properties AWS reports, write-only removed.

        A SUCCESS event's ``ResourceModel`` is the resource as it now is (Cloud Control: "each
        resource property and its current value"; the handler contract has create and update
        return what read returns), so it is used as is. Only an event without one costs a
        GetResource: one round trip less per operation, on the critical path of every chain.
        """
        if final.operation_status is not OperationStatus.SUCCESS or not final.identifier:
            return final
        facts = type_facts(self.calls.catalog, type_name, region)
        model = final.resource_model
        if model:
            return final.model_copy(update={"resource_model": strip_write_only(model, facts)})
        properties = await self.calls.describe(type_name, final.identifier, region=region)
        return final.model_copy(update={"resource_model": properties})

    async def _create(self, node: Node) -> NodeResult:
        spec = node.change.desired
        assert spec is not None
        info: ResourceTypeInfo = self.calls.type_info(spec.type, spec.region)
        document = self._resolve(with_tags(spec.properties, spec.tags, info), self.ledger.resources, spec.region)

        async def send(token: str) -> ProgressEvent:
            clear = self.calls.sealer.unseal_tree(document)
            return await self.calls.upstream.create_resource(spec.type, clear, region=spec.region, client_token=token)

        outcome = await self._issue(node, None, send)
        if isinstance(outcome, NodeResult):
            return outcome
        final = await self._described(outcome, spec.type, spec.region)
        return self._conclude(node, final, self._token(node), None)

    async def _update(self, node: Node) -> NodeResult:
        spec, change = node.change.desired, node.change
        assert spec is not None
        old = self.ledger.resources.get(change.name) or self.initial.get(change.name)
        physical_id = change.physical_id or (old.id if old else None)
        if old is None or not physical_id:
            return NodeResult(False, physical_id, error_code="NotFound", error_message="not recorded in state")
        info = self.calls.type_info(spec.type, spec.region)
        new_doc = self._resolve(with_tags(spec.properties, spec.tags, info), self.ledger.resources, spec.region)
        baseline = self.initial.get(change.name, old)
        if change.live_values is not None:  # planned with refresh: AWS holds the live values, patch from them
            baseline = with_live_baseline(baseline, change.live_values)
        try:
            old_doc = self._resolve(with_tags(baseline.declared, baseline.tags, info), self.initial, spec.region)
        except UnresolvedReference:
            old_doc = with_tags(baseline.declared, baseline.tags, info)
        facts = type_facts(self.calls.catalog, spec.type, spec.region)
        patch = update_patch(old_doc, self.calls.sealer.unseal_tree(new_doc), facts)
        if not patch:
            # Nothing AWS needs to hear (e.g. only tags order or a secret re-sealed): record the declaration.
            self.ledger.put(
                new_record(
                    spec,
                    physical_id,
                    old.properties,
                    catalog=self.calls.catalog,
                    now=self.clock(),
                    created_at=old.created_at,
                )
            )
            return NodeResult(True, physical_id)

        async def send(token: str) -> ProgressEvent:
            return await self.calls.upstream.update_resource(
                spec.type, physical_id, patch, region=spec.region, client_token=token
            )

        outcome = await self._issue(node, physical_id, send)
        if isinstance(outcome, NodeResult):
            return outcome
        final = await self._described(outcome.model_copy(update={"identifier": physical_id}), spec.type, spec.region)
        return self._conclude(node, final, self._token(node), physical_id)

    async def _delete(self, node: Node) -> NodeResult:
        change = node.change
        recorded = self.initial.get(change.name)
        physical_id = change.physical_id or (recorded.id if recorded else None)
        if not physical_id:
            return NodeResult(False, error_code="NotFound", error_message="no physical id recorded")
        if change.retained:
            # DeletionPolicy Retain: AWS keeps the resource; only the record of managing it goes.
            self.ledger.remove(change.type, physical_id, change.name)
            return NodeResult(True, physical_id)
        if change.snapshot == "snapshot_first":
            refused = await self._snapshot_first(node, physical_id)
            if refused is not None:
                return refused

        async def send(token: str) -> ProgressEvent:
            return await self.calls.upstream.delete_resource(
                change.type, physical_id, region=change.region, client_token=token
            )

        outcome = await self._issue(node, physical_id, send)
        if isinstance(outcome, NodeResult):
            if outcome.error_code not in GONE_CODES:
                return outcome
            # AWS says it does not exist: the truthful record is its absence.
            self.ledger.remove(change.type, physical_id, change.name)
            self.ledger.settle(self._token(node))
            return NodeResult(True, physical_id)
        return self._conclude(node, outcome, self._token(node), physical_id)

    async def _snapshot_first(self, node: Node, physical_id: str) -> NodeResult | None:
        """Create the snapshot a Snapshot policy asks for, through Cloud Control; None once it exists.

        The snapshot is AWS's to keep, not the project's: it is not recorded in state (a later
        plan must not delete it). Its ClientToken and name derive from the plan, so a retry of
        this request finds the same snapshot. If it cannot be made, the resource is not deleted.
        """
        change = node.change
        step = snapshot_step(change.previous_type or change.type)
        if step is None:
            return None
        name = snapshot_name(change.name, self.plan.id)
        token = client_token(self.plan.id, node.name, "SNAPSHOT")
        desired = step.desired_state(physical_id, name)
        try:
            event = await self.calls.call(
                lambda: self.calls.upstream.create_resource(
                    step.type_name, desired, region=change.region, client_token=token
                )
            )
            final = await self.calls.wait(event, region=change.region)
        except InfraError as exc:
            result = _failure(exc)
        else:
            if final.operation_status is OperationStatus.SUCCESS or final.error_code == "AlreadyExists":
                log.info("snapshot_taken", plan_id=self.plan.id, resource=change.name, snapshot=name)
                return None
            result = _failed_event(final, physical_id)
        result.physical_id = physical_id
        result.error_message = (
            f"The Snapshot policy's {step.type_name} {name!r} could not be created, so {change.name} was not "
            f"deleted: {result.error_message}"
        )
        return result

    async def _import(self, node: Node) -> NodeResult:
        spec, change = node.change.desired, node.change
        if spec is None or not change.physical_id:
            return NodeResult(False, change.physical_id, error_code="InvalidRequest", error_message="nothing to import")
        physical_id = change.physical_id
        properties = await self.calls.describe(spec.type, physical_id, region=spec.region)
        if properties is None:
            return NodeResult(False, physical_id, error_code="NotFound", error_message="could not read the resource")
        self.ledger.put(new_record(spec, physical_id, properties, catalog=self.calls.catalog, now=self.clock()))
        return NodeResult(True, physical_id)

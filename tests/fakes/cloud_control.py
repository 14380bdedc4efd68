"""An in-memory Cloud Control behind the ``Upstream`` port, for unit tests of execution.

It keeps the contract the executor relies on: mutations answer at once with an ``IN_PROGRESS``
progress event and a request token, and finish after ``polls_to_complete`` status polls; a
ClientToken seen before returns the original request (idempotency); identifiers and read-only
attributes are generated from the registry schema; create-only properties are refused on update.
Faults are scripted per resource name or type: fail an operation, throttle the next calls, or
"crash" (raise a ``BaseException`` the executor must not swallow) right after a request was issued.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import jsonpatch

from infra_mcp.catalog import Catalog, default_catalog
from infra_mcp.catalog.prices import bundled_pricing
from infra_mcp.container import wire_plan_services
from infra_mcp.domain.cloud import (
    CallerIdentity,
    OperationStatus,
    ProgressEvent,
    ResourceDescription,
    UpstreamStatus,
)
from infra_mcp.domain.desired import parse_desired_state
from infra_mcp.domain.plan import ApprovalMethod, Plan
from infra_mcp.domain.planner import make_plan
from infra_mcp.domain.project import ApprovalSettings, Member, Project, ProjectSettings, Role
from infra_mcp.domain.state import StateFile
from infra_mcp.errors import NotFound, UpstreamRefusesChanges, UpstreamThrottled, UpstreamUnavailable
from infra_mcp.services.execution.operations import PollPolicy
from infra_mcp.services.secrets import SecretSealer
from tests.fakes.stores import TEST_NOTARY, FakeProjectStore, FakeStateStores


class SimulatedCrash(BaseException):
    """Stands for the process dying: a BaseException, so no ``except Exception`` swallows it."""


@dataclass
class Request:
    token: str
    operation: str  # CREATE | UPDATE | DELETE
    type_name: str
    region: str
    identifier: str | None
    polls_left: int
    outcome: Callable[[], tuple[OperationStatus, str | None, str | None]]
    status: OperationStatus = OperationStatus.IN_PROGRESS
    error_code: str | None = None
    message: str | None = None
    counted: bool = True


@dataclass
class Fault:
    operation: str  # CREATE | UPDATE | DELETE
    error_code: str
    message: str
    synchronous: bool = False  # refuse at the call instead of failing the request later


@dataclass
class InMemoryCloud:
    """The simulated cloud and its bookkeeping (shared by every ``FakeUpstream`` call)."""

    catalog: Catalog = field(default_factory=default_catalog)
    polls_to_complete: int = 1
    resources: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    requests: dict[str, Request] = field(default_factory=dict)
    client_tokens: dict[str, str] = field(default_factory=dict)
    calls: list[tuple[str, str, str | None]] = field(default_factory=list)
    payloads: list[tuple[str, str, Any]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    faults: dict[tuple[str, str], Fault] = field(default_factory=dict)
    throttles: dict[str, int] = field(default_factory=dict)
    crash_after: set[tuple[str, str]] = field(default_factory=set)
    names: dict[str, str] = field(default_factory=dict)  # identifier -> logical name hint from the payload
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


class FakeUpstream:
    """The ``Upstream`` port over a :class:`InMemoryCloud`.

    Resources are matched to scripted faults by a ``Name`` tag or, failing that, by type name, so
    tests say ``fail("db", "CREATE", ...)`` about the resource their plan calls ``db``.
    """

    def __init__(self, cloud: InMemoryCloud | None = None, *, polls_to_complete: int = 1) -> None:
        self.cloud = cloud or InMemoryCloud(polls_to_complete=polls_to_complete)
        self.down: UpstreamUnavailable | None = None
        self.refuses_changes: UpstreamRefusesChanges | None = None

    def go_down(self, reason: str = "ConnectFailed") -> None:
        """Every later call fails as an unreachable upstream does: AWS_MCP_001, nothing sent."""
        self.down = UpstreamUnavailable(
            "The upstream AWS MCP server did not complete the call: it cannot be reached.",
            details={"reason": reason, "may_have_executed": False},
        )

    def _reachable(self) -> None:
        if self.down is not None:
            raise self.down

    # ---- scripting -------------------------------------------------------------------------

    def fail(self, key: str, operation: str, error_code: str = "InvalidRequest", message: str = "refused") -> None:
        """Make ``operation`` on resource ``key`` (logical name or type) end FAILED with an AWS error."""
        self.cloud.faults[(key, operation)] = Fault(operation, error_code, message)

    def refuse(self, key: str, operation: str, error_code: str = "ValidationException", message: str = "bad") -> None:
        """Make the call itself raise an AWS error (no request token is issued)."""
        self.cloud.faults[(key, operation)] = Fault(operation, error_code, message, synchronous=True)

    def throttle(self, call: str, times: int) -> None:
        """The next ``times`` calls of ``call`` (create, update, delete, status, get) raise ThrottlingException."""
        self.cloud.throttles[call] = self.cloud.throttles.get(call, 0) + times

    def crash_after_issuing(self, key: str, operation: str) -> None:
        """Raise :class:`SimulatedCrash` on the first status poll of that request (it was issued and journaled)."""
        self.cloud.crash_after.add((key, operation))

    def identifier_of(self, name: str) -> str | None:
        return next((i for i, n in self.cloud.names.items() if n == name and self._exists(i)), None)

    def _exists(self, identifier: str) -> bool:
        return any(i == identifier for (_, i) in self.cloud.resources)

    def properties_of(self, name: str) -> dict[str, Any] | None:
        ident = self.identifier_of(name)
        return next((p for (_, i), p in self.cloud.resources.items() if i == ident), None)

    # ---- helpers ---------------------------------------------------------------------------

    def _maybe_throttle(self, call: str) -> None:
        left = self.cloud.throttles.get(call, 0)
        if left > 0:
            self.cloud.throttles[call] = left - 1
            raise UpstreamThrottled(
                "AWS throttled the request (ThrottlingException) even after retries; wait and try again.",
                details={"aws_error_code": "ThrottlingException", "aws_message": "Rate exceeded"},
            )

    def _fault(self, name: str | None, type_name: str, operation: str) -> Fault | None:
        for key in (name, type_name):
            if key is not None and (key, operation) in self.cloud.faults:
                return self.cloud.faults[(key, operation)]
        return None

    def _issue(
        self,
        operation: str,
        type_name: str,
        region: str,
        identifier: str | None,
        client_token: str | None,
        outcome: Callable[[], tuple[OperationStatus, str | None, str | None]],
        name: str | None,
    ) -> ProgressEvent:
        token = f"req-{next(self.cloud._ids):06d}"
        request = Request(token, operation, type_name, region, identifier, self.cloud.polls_to_complete, outcome)
        self.cloud.requests[token] = request
        if client_token:
            self.cloud.client_tokens[client_token] = token
        self.cloud.in_flight += 1
        self.cloud.max_in_flight = max(self.cloud.max_in_flight, self.cloud.in_flight)
        if name is not None and (name, operation) in self.cloud.crash_after:
            request.polls_left = max(request.polls_left, 1)
            self.cloud.crash_after.discard((name, operation))
            self.cloud.crash_after.add((token, "POLL"))
        return self._event(request)

    def _event(self, request: Request) -> ProgressEvent:
        return ProgressEvent(
            type_name=request.type_name,
            identifier=request.identifier,
            request_token=request.token,
            operation=request.operation,  # type: ignore[arg-type]
            operation_status=request.status,
            status_message=request.message,
            error_code=request.error_code,
        )

    def _replay(self, client_token: str | None) -> ProgressEvent | None:
        if client_token and client_token in self.cloud.client_tokens:
            return self._event(self.cloud.requests[self.cloud.client_tokens[client_token]])
        return None

    def _name_in(self, desired: dict[str, Any]) -> str | None:
        tags = desired.get("Tags")
        if isinstance(tags, list):
            return next((t.get("Value") for t in tags if isinstance(t, dict) and t.get("Key") == "Name"), None)
        if isinstance(tags, dict):
            value = tags.get("Name")
            return value if isinstance(value, str) else None
        return None

    # ---- the port --------------------------------------------------------------------------

    async def create_resource(
        self, type_name: str, desired_state: dict[str, Any], *, region: str, client_token: str | None = None
    ) -> ProgressEvent:
        self._reachable()
        self.cloud.calls.append(("create", type_name, None))
        self._maybe_throttle("create")
        replay = self._replay(client_token)
        if replay is not None:
            return replay
        self.cloud.payloads.append(("create", type_name, copy.deepcopy(desired_state)))
        name = self._name_in(desired_state)
        fault = self._fault(name, type_name, "CREATE")
        if fault is not None and fault.synchronous:
            from infra_mcp.errors import UpstreamAWSError

            raise UpstreamAWSError(
                f"AWS refused the request ({fault.error_code}): {fault.message}",
                details={"aws_error_code": fault.error_code, "aws_message": fault.message},
            )
        info = self.cloud.catalog.get(type_name, region)
        properties = copy.deepcopy(desired_state)
        number = next(self.cloud._ids)
        for prop in info.primary_identifier:
            properties.setdefault(prop, f"{info.short_name.lower()}-{number:08x}")
        for prop in info.read_only_properties:
            if "/" not in prop:
                properties.setdefault(
                    prop, f"arn:aws:fake:{region}:{prop}/{number:08x}" if "Arn" in prop else f"{prop}-{number:08x}"
                )
        identifier = "|".join(str(properties[p]) for p in info.primary_identifier)
        if name is not None:
            self.cloud.names[identifier] = name

        def outcome() -> tuple[OperationStatus, str | None, str | None]:
            if fault is not None:
                return OperationStatus.FAILED, fault.error_code, fault.message
            if (type_name, identifier) in self.cloud.resources:
                return OperationStatus.FAILED, "AlreadyExists", f"{identifier} already exists"
            self.cloud.resources[(type_name, identifier)] = properties
            return OperationStatus.SUCCESS, None, None

        return self._issue("CREATE", type_name, region, identifier, client_token, outcome, name)

    async def get_resource(self, type_name: str, identifier: str, *, region: str) -> ResourceDescription:
        self._reachable()
        self.cloud.calls.append(("get", type_name, identifier))
        self._maybe_throttle("get")
        properties = self.cloud.resources.get((type_name, identifier))
        if properties is None:
            raise NotFound(
                f"AWS says the resource does not exist (ResourceNotFoundException): {identifier}",
                details={"aws_error_code": "ResourceNotFoundException"},
            )
        return ResourceDescription(type_name=type_name, identifier=identifier, properties=copy.deepcopy(properties))

    async def update_resource(
        self,
        type_name: str,
        identifier: str,
        patch: list[dict[str, Any]],
        *,
        region: str,
        client_token: str | None = None,
    ) -> ProgressEvent:
        self._reachable()
        self.cloud.calls.append(("update", type_name, identifier))
        self._maybe_throttle("update")
        replay = self._replay(client_token)
        if replay is not None:
            return replay
        self.cloud.payloads.append(("update", identifier, copy.deepcopy(patch)))
        name = self.cloud.names.get(identifier)
        fault = self._fault(name, type_name, "UPDATE")
        info = self.cloud.catalog.get(type_name, region)

        def outcome() -> tuple[OperationStatus, str | None, str | None]:
            current = self.cloud.resources.get((type_name, identifier))
            if current is None:
                return OperationStatus.FAILED, "NotFound", f"{identifier} not found"
            if fault is not None:
                return OperationStatus.FAILED, fault.error_code, fault.message
            for op in patch:
                top = op["path"].lstrip("/").split("/")[0]
                if top in info.create_only_properties or top in info.read_only_properties:
                    return OperationStatus.FAILED, "NotUpdatable", f"{top} cannot be updated"
            self.cloud.resources[(type_name, identifier)] = jsonpatch.apply_patch(current, patch)
            return OperationStatus.SUCCESS, None, None

        return self._issue("UPDATE", type_name, region, identifier, client_token, outcome, name)

    async def delete_resource(
        self, type_name: str, identifier: str, *, region: str, client_token: str | None = None
    ) -> ProgressEvent:
        self._reachable()
        self.cloud.calls.append(("delete", type_name, identifier))
        self._maybe_throttle("delete")
        replay = self._replay(client_token)
        if replay is not None:
            return replay
        name = self.cloud.names.get(identifier)
        fault = self._fault(name, type_name, "DELETE")

        def outcome() -> tuple[OperationStatus, str | None, str | None]:
            if fault is not None:
                return OperationStatus.FAILED, fault.error_code, fault.message
            if self.cloud.resources.pop((type_name, identifier), None) is None:
                return OperationStatus.FAILED, "NotFound", f"{identifier} not found"
            return OperationStatus.SUCCESS, None, None

        return self._issue("DELETE", type_name, region, identifier, client_token, outcome, name)

    async def list_resources(
        self, type_name: str, *, region: str, next_token: str | None = None
    ) -> tuple[list[ResourceDescription], str | None]:
        self._reachable()
        found = [
            ResourceDescription(type_name=t, identifier=i, properties=copy.deepcopy(p))
            for (t, i), p in self.cloud.resources.items()
            if t == type_name
        ]
        return found, None

    async def get_request_status(self, request_token: str, *, region: str) -> ProgressEvent:
        self._reachable()
        self.cloud.calls.append(("status", "", request_token))
        self._maybe_throttle("status")
        request = self.cloud.requests[request_token]
        if (request_token, "POLL") in self.cloud.crash_after:
            self.cloud.crash_after.discard((request_token, "POLL"))
            raise SimulatedCrash(request_token)
        if not request.status.done:
            request.polls_left -= 1
            if request.polls_left <= 0:
                request.status, request.error_code, request.message = request.outcome()
        if request.status.done and request.counted:
            request.counted = False
            self.cloud.in_flight -= 1
        return self._event(request)

    def settle(self) -> None:
        """Finish every request still in progress, as AWS would while nobody polls (after a crash)."""
        for request in self.cloud.requests.values():
            if not request.status.done:
                request.status, request.error_code, request.message = request.outcome()
                if request.counted:
                    request.counted = False
                    self.cloud.in_flight -= 1

    async def caller_identity(self, *, region: str) -> CallerIdentity:
        self._reachable()
        return CallerIdentity(account="000000000000", arn="arn:aws:iam::000000000000:user/fake", user_id="FAKE")

    async def status(self) -> UpstreamStatus:
        return UpstreamStatus(
            kind="sandbox",
            dialect="call_aws",
            target="fake",
            tool="call_aws",
            connected=True,
            healthy=True,
            region="us-east-1",
        )

    def change_refusal(self) -> UpstreamRefusesChanges | None:
        return self.refuses_changes

    async def aclose(self) -> None:
        return None


# ---- a whole execution world for service tests ------------------------------------------------


T0 = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)


def res(name: str, type_name: str, depends_on: list[str] | None = None, **properties: Any) -> dict[str, Any]:
    """A desired resource tagged ``Name=<name>`` so the fake cloud can match scripted faults to it."""
    entry: dict[str, Any] = {"name": name, "type": type_name, "properties": properties, "tags": {"Name": name}}
    if depends_on:
        entry["depends_on"] = depends_on
    return entry


def vpc(name: str, cidr: str = "10.0.0.0/16", **extra: Any) -> dict[str, Any]:
    return res(name, "AWS::EC2::VPC", CidrBlock=cidr, **extra)


def subnet(name: str, vpc_name: str, cidr: str = "10.0.1.0/24") -> dict[str, Any]:
    return res(name, "AWS::EC2::Subnet", VpcId={"Ref": vpc_name}, CidrBlock=cidr)


class World:
    """Fake stores, a fake cloud, the approval and execution services, a controllable clock."""

    def __init__(
        self,
        tmp_path: Path,
        *,
        parallelism: int = 10,
        polls: int = 1,
        checkpoint_interval: float = 3600.0,
        checkpoint_every: int = 1000,
    ) -> None:
        self.projects = FakeProjectStore()
        self.states = FakeStateStores()
        self.store = self.states.store
        self.upstream = FakeUpstream(polls_to_complete=polls)
        self.cloud = self.upstream.cloud
        self.sealer = SecretSealer(tmp_path / "sealing.key")
        self.now = T0
        self.sleeps: list[float] = []
        self.progress: list[tuple[float, float | None, str]] = []
        # The same wiring as production (container.open_app), over the fakes.
        services = wire_plan_services(
            self.projects,
            self.states,
            self.upstream,
            self.cloud.catalog,
            self.sealer,
            notary=TEST_NOTARY,
            parallelism=parallelism,
            checkpoint_interval=checkpoint_interval,
            checkpoint_every=checkpoint_every,
            poll=PollPolicy(initial=0.001, maximum=0.001, throttle_backoff=0.001),
            clock=self.clock,
            sleep=self.sleep,
        )
        self.planning = services.planning
        self.approvals = services.approvals
        self.execution = services.execution
        self.project = Project(
            id="web",
            name="web",
            owner="olivia",
            members=[
                Member(user="olivia", role=Role.OWNER),
                Member(user="alice", role=Role.APPROVER),
                Member(user="ed", role=Role.EDITOR),
                Member(user="vic", role=Role.VIEWER),
            ],
            settings=ProjectSettings(approval=ApprovalSettings(approval_ttl_minutes=60)),
        )
        self.projects.projects["web"] = self.project
        self._plans = 0

    def clock(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await anyio.sleep(0)

    async def report(self, done: float, total: float | None, message: str) -> None:
        self.progress.append((done, total, message))

    async def state(self) -> StateFile:
        return await self.store.read("web") or StateFile.empty("web")

    async def plan(
        self,
        resources: list[dict[str, Any]],
        *,
        author: str = "ed",
        description: str = "",
        policies: dict[str, dict[str, Any]] | None = None,
    ) -> Plan:
        """A stored plan towards ``resources``; ``policies`` sets a template's attributes by name
        (``{"db": {"deletion_policy": "Snapshot"}}``)."""
        current = await self.store.read("web")
        specs = parse_desired_state({"resources": resources}, self.cloud.catalog)
        specs = [s.model_copy(update={"properties": self._seal(s), **(policies or {}).get(s.name, {})}) for s in specs]
        self._plans += 1
        made = make_plan(
            project_id="web",
            plan_id=f"plan-{self._plans:04d}",
            author=author,
            description=description or f"plan {self._plans}",
            kind="full",
            desired=specs,
            current=current,
            catalog=self.cloud.catalog,
            full=True,
            lint=False,
            pricing=bundled_pricing(),
        )
        return await self.projects.save_plan(TEST_NOTARY.sign_plan(made))

    def _seal(self, spec: Any) -> dict[str, Any]:
        info = self.cloud.catalog.get(spec.type, spec.region)
        return {
            k: (self.sealer.seal(v) if k in info.write_only_properties and not isinstance(v, dict) else v)
            for k, v in spec.properties.items()
        }

    async def approved(self, resources: list[dict[str, Any]], **kw: Any) -> Plan:
        plan = await self.plan(resources, **kw)
        return await self.approvals.approve(plan.id, "alice", method=ApprovalMethod.ELICITATION)

    async def apply(self, resources: list[dict[str, Any]], **kw: Any) -> Plan:
        plan = await self.approved(resources, **kw)
        return await self.execution.execute(plan.id, "ed", self.report)

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

"""A simulated AWS Cloud Control API, faithful to the registry schemas.

:class:`SandboxCloud` answers Cloud Control operations with AWS's own parameter and response
names (PascalCase dicts, timestamps as aware ``datetime``), so each front end (the ``call_aws``
MCP tool, the AWS JSON 1.0 HTTP server) only has to encode. Its behaviour follows AWS's:

* mutations are asynchronous: they answer a ``ProgressEvent`` ``IN_PROGRESS`` and end ``SUCCESS``
  or ``FAILED`` once ``now >= started + latency``; the world changes at that moment. Requests are
  settled lazily, by whichever call comes next, so no background thread is needed;
* a ``ClientToken`` makes a mutation idempotent: repeating the same request with the same token
  answers the same request token, the same request with another token is a new request, and the
  same token with a different request is a ``ClientTokenConflictException``;
* a refused *call* is an API exception (:class:`CloudControlError`); a request the handler rejects
  (model validation, a name already taken, an injected fault) ends ``FAILED`` with a
  ``HandlerErrorCode``, as AWS reports them.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import jsonpatch
import jsonpointer

from infra_mcp.catalog import Catalog, ResourceTypeInfo, default_catalog
from infra_mcp.errors import ValidationFailed
from infra_mcp.sandbox import reads, schema
from infra_mcp.sandbox.config import SandboxConfig
from infra_mcp.sandbox.errors import (
    CloudControlError,
    HandlerErrorCode,
    invalid_request,
    resource_not_found,
    throttled,
    type_not_found,
)
from infra_mcp.sandbox.identity import caller_identity
from infra_mcp.sandbox.world import MemoryWorldStore, Transaction, WorldStore

Clock = Callable[[], datetime]

IN_PROGRESS = "IN_PROGRESS"
SUCCESS = "SUCCESS"
FAILED = "FAILED"
_FAULT_CODES = (HandlerErrorCode.SERVICE_INTERNAL_ERROR, HandlerErrorCode.GENERAL_SERVICE_EXCEPTION)
_MAX_RESULTS = 100


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _parse_json_document(raw: Any, what: str) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise invalid_request(f"{what} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).") from None


def _require(params: dict[str, Any], *names: str) -> None:
    missing = [name for name in names if params.get(name) in (None, "")]
    if missing:
        raise CloudControlError("ValidationException", f"Missing required parameter(s): {', '.join(missing)}.")


class SandboxCloud:
    """The simulated Cloud Control API (plus ``sts GetCallerIdentity``).

    Args:
        store: Where the world lives (:class:`~infra_mcp.sandbox.world.FileWorldStore` to share it).
        config: Latency and fault knobs.
        catalog: Registry schemas; the process-wide catalog by default.
        clock: Current time (inject a fake in tests: nothing here sleeps).
    """

    def __init__(
        self,
        store: WorldStore | None = None,
        *,
        config: SandboxConfig | None = None,
        catalog: Catalog | None = None,
        clock: Clock = _utc_now,
    ) -> None:
        self.store: WorldStore = store or MemoryWorldStore()
        self.config = config or SandboxConfig()
        self.catalog = catalog or default_catalog()
        self.clock = clock
        self._rng = random.Random(self.config.seed)

    @cached_property
    def _regions(self) -> frozenset[str]:
        # Looked up on first use: it imports cfn-lint (about a second), which would otherwise
        # delay the MCP handshake.
        return frozenset(Catalog.regions())

    # ------------------------------------------------------------------ dispatch

    def call(
        self, operation: str, params: dict[str, Any] | None = None, *, region: str | None = None
    ) -> dict[str, Any]:
        """Run one API operation (``CreateResource``, ``GetCallerIdentity`` ...) and return AWS's response.

        Raises:
            CloudControlError: AWS's API exception for a refused call.
        """
        handlers: dict[str, Callable[[dict[str, Any], str], dict[str, Any]]] = {
            "CreateResource": self.create_resource,
            "GetResource": self.get_resource,
            "UpdateResource": self.update_resource,
            "DeleteResource": self.delete_resource,
            "ListResources": self.list_resources,
            "GetResourceRequestStatus": self.get_resource_request_status,
            "GetCallerIdentity": lambda _params, _region: caller_identity(),
            "DescribeRegions": lambda params, _region: reads.describe_regions(params, self._regions),
            "DescribeAvailabilityZones": lambda params, region: reads.describe_availability_zones(params, region),
            "ListBuckets": self.list_buckets,
        }
        handler = handlers.get(operation)
        if handler is None:
            raise CloudControlError("UnknownOperationException", f"Operation {operation} is not supported.")
        region = region or self.config.default_region
        if region not in self._regions:
            raise CloudControlError("InvalidRequestException", f"The region '{region}' is not a known AWS region.")
        return handler(dict(params or {}), region)

    # ------------------------------------------------------------------ operations

    def create_resource(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        _require(params, "TypeName", "DesiredState")
        with self.store.transaction() as txn:
            now = self._begin(txn)
            info = self._type(params["TypeName"], region)
            desired = _parse_json_document(params["DesiredState"], "DesiredState")
            if not isinstance(desired, dict):
                raise invalid_request("DesiredState must be a JSON object of the resource's properties.")
            fingerprint = _canonical(["CREATE", info.type_name, region, desired])
            if (replay := self._replay(txn, params.get("ClientToken"), fingerprint)) is not None:
                return replay
            failure: tuple[str, str] | None = None
            identifier: str | None = None
            model: dict[str, Any] | None = None
            problems = schema.validation_messages(info, desired)
            if problems:
                failure = (HandlerErrorCode.INVALID_REQUEST, f"Model validation failed ({'; '.join(problems)})")
            else:
                identifier, named = schema.assign_identifier(info, desired, region)
                if self._exists(txn, region, info.type_name, identifier) or self._busy(
                    txn, region, info.type_name, identifier
                ):
                    failure = (
                        HandlerErrorCode.ALREADY_EXISTS,
                        f"Resource of type '{info.type_name}' with identifier '{identifier}' already exists.",
                    )
                else:
                    full = schema.fill_read_only(info, named, region=region, identifier=identifier, now=now)
                    # Write-only values (passwords, keys) are never kept: the world file is plain JSON.
                    model = schema.strip_paths(full, info.write_only_properties)
            request = self._record(txn, "CREATE", info, region, identifier, now, params, fingerprint, model, failure)
            self._settle(txn, now)
            return {"ProgressEvent": self._event(txn, request)}

    def get_resource(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        _require(params, "TypeName", "Identifier")
        with self.store.transaction() as txn:
            self._begin(txn)
            info = self._type(params["TypeName"], region)
            identifier = str(params["Identifier"])
            resource = self._resource(txn, region, info.type_name, identifier)
            return {
                "TypeName": info.type_name,
                "ResourceDescription": {"Identifier": identifier, "Properties": _canonical(resource["properties"])},
            }

    def update_resource(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        _require(params, "TypeName", "Identifier", "PatchDocument")
        with self.store.transaction() as txn:
            now = self._begin(txn)
            info = self._type(params["TypeName"], region)
            identifier = str(params["Identifier"])
            operations = _parse_json_document(params["PatchDocument"], "PatchDocument")
            fingerprint = _canonical(["UPDATE", info.type_name, region, identifier, operations])
            if (replay := self._replay(txn, params.get("ClientToken"), fingerprint)) is not None:
                return replay
            old = self._resource(txn, region, info.type_name, identifier)["properties"]
            self._refuse_concurrent(txn, region, info.type_name, identifier)
            new = _apply_patch(info, old, operations)
            _refuse_changes(info.create_only_properties, old, new, "NotUpdatableException", "createOnlyProperties")
            _refuse_changes(info.read_only_properties, old, new, "InvalidRequestException", "readOnlyProperties")
            failure: tuple[str, str] | None = None
            problems = schema.validation_messages(info, new, for_update=True)
            if problems:
                failure = (HandlerErrorCode.INVALID_REQUEST, f"Model validation failed ({'; '.join(problems)})")
            model = schema.strip_paths(new, info.write_only_properties)
            request = self._record(txn, "UPDATE", info, region, identifier, now, params, fingerprint, model, failure)
            self._settle(txn, now)
            return {"ProgressEvent": self._event(txn, request)}

    def delete_resource(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        _require(params, "TypeName", "Identifier")
        with self.store.transaction() as txn:
            now = self._begin(txn)
            info = self._type(params["TypeName"], region)
            identifier = str(params["Identifier"])
            fingerprint = _canonical(["DELETE", info.type_name, region, identifier])
            if (replay := self._replay(txn, params.get("ClientToken"), fingerprint)) is not None:
                return replay
            self._resource(txn, region, info.type_name, identifier)
            self._refuse_concurrent(txn, region, info.type_name, identifier)
            failure = _dependency_violation(txn.data["resources"].get(region, {}), info.type_name, identifier)
            request = self._record(txn, "DELETE", info, region, identifier, now, params, fingerprint, None, failure)
            self._settle(txn, now)
            return {"ProgressEvent": self._event(txn, request)}

    def list_resources(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        _require(params, "TypeName")
        limit = _max_results(params.get("MaxResults"), self.config.page_size)
        with self.store.transaction() as txn:
            self._begin(txn)
            info = self._type(params["TypeName"], region)
            resources = txn.data["resources"].get(region, {}).get(info.type_name, {})
            identifiers = sorted(resources)
            after = _decode_next_token(params.get("NextToken"), info.type_name)
            if after is not None:
                identifiers = [i for i in identifiers if i > after]
            page = identifiers[:limit]
            answer: dict[str, Any] = {
                "TypeName": info.type_name,
                "ResourceDescriptions": [
                    {"Identifier": i, "Properties": _canonical(resources[i]["properties"])} for i in page
                ],
            }
            if len(identifiers) > limit:
                answer["NextToken"] = _encode_next_token(info.type_name, page[-1])
            return answer

    def get_resource_request_status(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        _require(params, "RequestToken")
        with self.store.transaction() as txn:
            self._begin(txn)
            request = txn.data["requests"].get(str(params["RequestToken"]))
            if request is None:
                raise CloudControlError(
                    "RequestTokenNotFoundException", f"Request with token {params['RequestToken']} was not found."
                )
            return {"ProgressEvent": self._event(txn, request)}

    def list_buckets(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        """S3 ``ListBuckets``: every ``AWS::S3::Bucket`` of the world, whatever its region (as S3 does)."""
        with self.store.transaction() as txn:
            self._settle(txn, self.clock())
            found = [
                (name, where, record.get("created"))
                for where, types in txn.data["resources"].items()
                for name, record in types.get(reads.BUCKET_TYPE, {}).items()
            ]
        return reads.list_buckets(found)

    # ------------------------------------------------------------------ internals

    def _begin(self, txn: Transaction) -> datetime:
        """Every Cloud Control call: maybe throttle, then settle the requests whose time has come."""
        # One draw per call whatever the rate, so a seed gives the same sequence for any knob values.
        if self._rng.random() < self.config.throttle_rate:
            raise throttled()
        now = self.clock()
        self._settle(txn, now)
        return now

    def _type(self, type_name: Any, region: str) -> ResourceTypeInfo:
        if not isinstance(type_name, str):
            raise type_not_found(str(type_name))
        try:
            info = self.catalog.get(type_name, region)
        except ValidationFailed:
            raise type_not_found(type_name) from None
        # The catalog forgives "EC2::VPC" and odd casing; Cloud Control does not.
        if info.type_name != type_name:
            raise type_not_found(type_name)
        return info

    @staticmethod
    def _bucket(txn: Transaction, region: str, type_name: str) -> dict[str, Any]:
        bucket: dict[str, Any] = txn.data["resources"].setdefault(region, {}).setdefault(type_name, {})
        return bucket

    @staticmethod
    def _exists(txn: Transaction, region: str, type_name: str, identifier: str) -> bool:
        return identifier in txn.data["resources"].get(region, {}).get(type_name, {})

    def _resource(self, txn: Transaction, region: str, type_name: str, identifier: str) -> dict[str, Any]:
        resource = txn.data["resources"].get(region, {}).get(type_name, {}).get(identifier)
        if resource is None:
            raise resource_not_found(type_name, identifier)
        return resource  # type: ignore[no-any-return]

    @staticmethod
    def _busy(txn: Transaction, region: str, type_name: str, identifier: str) -> bool:
        return any(
            r["status"] == IN_PROGRESS
            and r["identifier"] == identifier
            and r["type_name"] == type_name
            and r["region"] == region
            for r in _pending(txn)
        )

    def _refuse_concurrent(self, txn: Transaction, region: str, type_name: str, identifier: str) -> None:
        if self._busy(txn, region, type_name, identifier):
            raise CloudControlError(
                "ConcurrentOperationException",
                f"Another resource operation is in progress on '{identifier}' ({type_name}); wait for it to finish.",
            )

    def _replay(self, txn: Transaction, client_token: Any, fingerprint: str) -> dict[str, Any] | None:
        """The earlier answer to the same request made with the same client token, if any."""
        if not client_token:
            return None
        for request in txn.data["requests"].values():
            if request.get("client_token") == client_token:
                if request["fingerprint"] != hashlib.sha256(fingerprint.encode()).hexdigest():
                    raise CloudControlError(
                        "ClientTokenConflictException",
                        f"The client token {client_token} was already used for a different request.",
                    )
                return {"ProgressEvent": self._event(txn, request)}
        return None

    def _record(
        self,
        txn: Transaction,
        operation: str,
        info: ResourceTypeInfo,
        region: str,
        identifier: str | None,
        now: datetime,
        params: dict[str, Any],
        fingerprint: str,
        model: dict[str, Any] | None,
        failure: tuple[str, str] | None,
    ) -> dict[str, Any]:
        # One draw per mutation whatever the rate (see _begin).
        if self._rng.random() < self.config.failure_rate_for(info.type_name) and failure is None:
            code = self._rng.choice(_FAULT_CODES)
            failure = (code, f"Simulated {code} (infra-mcp sandbox failure injection); retry the operation.")
        started = now.timestamp()
        token = str(uuid.uuid4())
        request = {
            "token": token,
            "client_token": params.get("ClientToken") or None,
            "fingerprint": hashlib.sha256(fingerprint.encode()).hexdigest(),
            "operation": operation,
            "type_name": info.type_name,
            "region": region,
            "identifier": identifier,
            "started": started,
            "complete_at": started + self.config.latency_seconds(operation),
            "status": IN_PROGRESS,
            "model": model,
            "failure": list(failure) if failure else None,
        }
        txn.data["requests"][token] = request
        txn.data["pending"].append(token)
        txn.changed_request(token)
        txn.changed_pending()
        return request

    def _settle(self, txn: Transaction, now: datetime) -> None:
        """Finish every request whose latency has elapsed, oldest first, changing the world."""
        moment = now.timestamp()
        due = sorted(
            (r for r in _pending(txn) if r["complete_at"] <= moment),
            key=lambda r: (r["complete_at"], r["started"]),
        )
        for request in due:
            self._finish(txn, request)
            txn.changed_request(request["token"])
        if due:
            txn.data["pending"] = [r["token"] for r in _pending(txn) if r["status"] == IN_PROGRESS]
            txn.changed_pending()
            self._prune(txn)

    def _finish(self, txn: Transaction, request: dict[str, Any]) -> None:
        region, type_name, identifier = request["region"], request["type_name"], request["identifier"]
        failure = request.get("failure")
        bucket = self._bucket(txn, region, type_name)
        when = request["complete_at"]
        if failure is None and request["operation"] == "CREATE" and identifier in bucket:
            failure = [
                HandlerErrorCode.ALREADY_EXISTS,
                f"Resource of type '{type_name}' with identifier '{identifier}' already exists.",
            ]
        elif failure is None and request["operation"] != "CREATE" and identifier not in bucket:
            failure = [
                HandlerErrorCode.NOT_FOUND,
                f"Resource of type '{type_name}' with identifier '{identifier}' was not found.",
            ]
        if failure is None:
            txn.changed_resource(region, type_name, identifier)
            if request["operation"] == "CREATE":
                bucket[identifier] = {"properties": request["model"], "created": when, "updated": when}
            elif request["operation"] == "UPDATE":
                bucket[identifier]["properties"] = request["model"]
                bucket[identifier]["updated"] = when
            else:
                del bucket[identifier]
            request["status"] = SUCCESS
        else:
            request["status"] = FAILED
            request["error_code"], request["status_message"] = str(failure[0]), failure[1]
        # The model lives on in the resource; the finished request only needs to say how it ended.
        request.pop("model", None)

    def _prune(self, txn: Transaction) -> None:
        requests = txn.data["requests"]
        # Prune in batches (a tenth over the limit) so a busy world does not pay this on every call.
        limit = self.config.max_finished_requests
        if len(requests) <= limit + max(limit // 10, 1):
            return
        excess = len(requests) - limit
        # Requests are kept in the order they were made (JSON objects keep their order on reload).
        for token in [t for t, r in requests.items() if r["status"] != IN_PROGRESS][:excess]:
            del requests[token]
            txn.changed_request(token)

    def _event(self, txn: Transaction, request: dict[str, Any]) -> dict[str, Any]:
        """The request as Cloud Control's ``ProgressEvent`` (only the members that have a value)."""
        status = request["status"]
        event: dict[str, Any] = {
            "TypeName": request["type_name"],
            "Identifier": request["identifier"],
            "RequestToken": request["token"],
            "Operation": request["operation"],
            "OperationStatus": status,
            "EventTime": datetime.fromtimestamp(
                request["started"] if status == IN_PROGRESS else request["complete_at"], UTC
            ),
        }
        if status == IN_PROGRESS:
            event["RetryAfter"] = datetime.fromtimestamp(request["complete_at"], UTC)
        elif status == SUCCESS and request["operation"] != "DELETE":
            resource = txn.data["resources"].get(request["region"], {}).get(request["type_name"], {})
            current = resource.get(request["identifier"])
            if current is not None:
                event["ResourceModel"] = _canonical(current["properties"])
        elif status == FAILED:
            event["ErrorCode"] = request["error_code"]
            event["StatusMessage"] = request["status_message"]
        return {key: value for key, value in event.items() if value is not None}


def _pending(txn: Transaction) -> list[dict[str, Any]]:
    """The requests still in progress (the world keeps their tokens so nobody scans finished ones)."""
    requests = txn.data["requests"]
    return [requests[token] for token in txn.data["pending"] if token in requests]


def _apply_patch(info: ResourceTypeInfo, old: dict[str, Any], operations: Any) -> dict[str, Any]:
    """Apply an RFC 6902 patch to a copy of ``old``.

    Raises:
        CloudControlError: InvalidRequestException for a malformed or inapplicable patch.
    """
    if not isinstance(operations, list) or not all(isinstance(op, dict) for op in operations):
        raise invalid_request("PatchDocument must be a JSON array of RFC 6902 operations.")
    working = copy.deepcopy(old)
    # Write-only values are not kept, so "replace /MasterUserPassword" must find something to replace.
    placeholders = set()
    for op in operations:
        top = str(op.get("path", "")).lstrip("/").split("/")[0]
        if top and top not in working and info.is_write_only(top) and op.get("op") in ("replace", "remove", "test"):
            working[top] = None
            placeholders.add(top)
    try:
        new = jsonpatch.JsonPatch(operations).apply(working)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, TypeError, KeyError, IndexError) as exc:
        raise invalid_request(f"Invalid patch document: {exc}") from None
    if not isinstance(new, dict):
        raise invalid_request("Invalid patch document: the result is not an object of properties.")
    for top in placeholders:
        if new.get(top) is None:
            new.pop(top, None)
    return new


def _refuse_changes(paths: list[str], old: dict[str, Any], new: dict[str, Any], code: str, kind: str) -> None:
    changed = [p for p in paths if schema.value_at(old, p) != schema.value_at(new, p)]
    if changed:
        listed = ", ".join(f"/properties/{p}" for p in changed)
        raise CloudControlError(code, f"Invalid patch update: {kind} [{listed}] cannot be updated")


def _max_results(raw: Any, default: int) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise invalid_request(f"MaxResults must be an integer between 1 and {_MAX_RESULTS}.") from None
    if not 1 <= value <= _MAX_RESULTS:
        raise invalid_request(f"MaxResults must be an integer between 1 and {_MAX_RESULTS}.")
    return value


def _encode_next_token(type_name: str, after: str) -> str:
    return base64.urlsafe_b64encode(_canonical({"t": type_name, "a": after}).encode()).decode()


def _decode_next_token(token: Any, type_name: str) -> str | None:
    if not token:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(str(token).encode()))
        if data["t"] == type_name and isinstance(data["a"], str):
            return str(data["a"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        pass
    raise invalid_request("The NextToken is not valid for this request; start the listing again without it.")


# EC2 refuses to delete these while other resources still use them (AWS's DependencyViolation):
# a subnet with instances or interfaces, a VPC with subnets or security groups, a security group
# an instance uses, an attached internet gateway, a route table associated with a subnet.
_GUARDED_BY_DEPENDENTS = frozenset(
    {
        "AWS::EC2::VPC",
        "AWS::EC2::Subnet",
        "AWS::EC2::SecurityGroup",
        "AWS::EC2::InternetGateway",
        "AWS::EC2::RouteTable",
    }
)
# Routes go with their table, and attachments are what delete-time detaching removes.
_NOT_BLOCKING = frozenset({"AWS::EC2::Route"})


def _dependency_violation(world: dict[str, dict[str, Any]], type_name: str, identifier: str) -> tuple[str, str] | None:
    """The failure of deleting a guarded EC2 resource that another resource still refers to."""
    if type_name not in _GUARDED_BY_DEPENDENTS:
        return None
    for other_type, resources in world.items():
        if other_type in _NOT_BLOCKING:
            continue
        for other_id, resource in resources.items():
            if (other_type, other_id) == (type_name, identifier):
                continue
            if _mentions(resource.get("properties"), identifier):
                return (
                    HandlerErrorCode.RESOURCE_CONFLICT,
                    f"The {type_name.split('::')[-1].lower()} '{identifier}' has dependencies and cannot be deleted: "
                    f"{other_type} '{other_id}' uses it. (Service: Ec2, Status Code: 400, Error Code: DependencyViolation)",
                )
    return None


def _mentions(node: Any, identifier: str) -> bool:
    if isinstance(node, str):
        return node == identifier
    if isinstance(node, dict):
        return any(_mentions(v, identifier) for v in node.values())
    if isinstance(node, list):
        return any(_mentions(v, identifier) for v in node)
    return False

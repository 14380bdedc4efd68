"""The sandbox's knobs: latency, faults, reproducibility."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

MUTATIONS = ("CREATE", "UPDATE", "DELETE")
READS = frozenset({"GetResource", "ListResources"})
_OPERATION_ALIASES = {
    "CREATE": "CREATE",
    "CREATERESOURCE": "CREATE",
    "UPDATE": "UPDATE",
    "UPDATERESOURCE": "UPDATE",
    "DELETE": "DELETE",
    "DELETERESOURCE": "DELETE",
}


def mutation_name(operation: str) -> str:
    """``create-resource`` / ``CreateResource`` / ``create`` -> ``CREATE``.

    Raises:
        ValueError: for anything but the three asynchronous mutations.
    """
    key = operation.replace("-", "").replace("_", "").upper()
    if key not in _OPERATION_ALIASES:
        raise ValueError(f"{operation!r} is not CREATE, UPDATE or DELETE")
    return _OPERATION_ALIASES[key]


@dataclass(frozen=True)
class SandboxConfig:
    """How the simulated Cloud Control behaves.

    Attributes:
        latency_ms: Time an asynchronous request stays ``IN_PROGRESS`` before it ends.
        operation_latency_ms: Per-mutation override of ``latency_ms`` (keys ``CREATE``/``UPDATE``/``DELETE``).
        throttle_rate: Probability that any Cloud Control call is refused with ``ThrottlingException``.
        failure_rate: Probability that an accepted mutation ends ``FAILED`` (``ServiceInternalError`` ...).
        type_failure_rates: Per-type override of ``failure_rate`` (``{"AWS::EC2::VPC": 0.5}``).
        seed: Seed of the fault generator; the same seed and the same calls give the same faults.
        default_region: Region used when a call names none.
        read_latency_ms: Time a read (``GetResource``, ``ListResources``) takes to answer, applied by the
            front ends (the simulated cloud itself never sleeps).
        page_size: ``ListResources`` page size when ``MaxResults`` is not given.
        max_finished_requests: Finished requests kept for status polls and client-token idempotency.
    """

    latency_ms: int = 0
    operation_latency_ms: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    throttle_rate: float = 0.0
    failure_rate: float = 0.0
    type_failure_rates: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    seed: int | None = None
    default_region: str = "us-east-1"
    read_latency_ms: int = 0
    page_size: int = 50
    max_finished_requests: int = 1000

    def __post_init__(self) -> None:
        rates = [self.throttle_rate, self.failure_rate, *self.type_failure_rates.values()]
        if any(not 0.0 <= rate <= 1.0 for rate in rates):
            raise ValueError("rates must be between 0 and 1")
        if self.latency_ms < 0 or self.read_latency_ms < 0 or any(ms < 0 for ms in self.operation_latency_ms.values()):
            raise ValueError("latencies must not be negative")
        normalized = {mutation_name(op): ms for op, ms in self.operation_latency_ms.items()}
        object.__setattr__(self, "operation_latency_ms", MappingProxyType(normalized))
        object.__setattr__(self, "type_failure_rates", MappingProxyType(dict(self.type_failure_rates)))

    def latency_seconds(self, operation: str) -> float:
        """How long a ``CREATE``/``UPDATE``/``DELETE`` request stays in progress."""
        return self.operation_latency_ms.get(operation, self.latency_ms) / 1000.0

    def read_delay_seconds(self, operation: str) -> float:
        """How long a call of ``operation`` waits before it is answered (reads only)."""
        return self.read_latency_ms / 1000.0 if operation in READS else 0.0

    def failure_rate_for(self, type_name: str) -> float:
        return self.type_failure_rates.get(type_name, self.failure_rate)

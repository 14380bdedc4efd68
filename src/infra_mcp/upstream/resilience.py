"""Retries with exponential backoff and full jitter, and a circuit breaker.

Retries go through ``stamina`` (its backoff hook supplies our full-jitter delay, so the waits are
``uniform(0, min(cap, base * 2**n))`` rather than stamina's additive jitter: many executor workers
throttled at the same moment then spread out instead of retrying in lock-step).
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import stamina

from infra_mcp.errors import UpstreamUnavailable

T = TypeVar("T")
CircuitState = Literal["closed", "open", "half_open"]


def full_jitter_delay(retry_number: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Delay before retry ``retry_number`` (1-based): uniform in ``[0, min(cap, base * 2**(n-1))]``."""
    ceiling = min(cap, base * 2 ** min(retry_number - 1, 60))
    return rng.uniform(0.0, ceiling) if ceiling > 0 else 0.0


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to retry a call that failed in a retryable way.

    Attributes:
        attempts: Total tries, the first included (1 = no retries).
        base_delay: Backoff ceiling of the first retry, seconds; doubles per retry.
        max_delay: Cap on any single backoff, seconds.
        rng: Randomness for the jitter (seed it in tests).
    """

    attempts: int = 5
    base_delay: float = 0.2
    max_delay: float = 5.0
    rng: random.Random = field(default_factory=random.Random, compare=False)

    @classmethod
    def disabled(cls) -> RetryPolicy:
        return cls(attempts=1)

    @classmethod
    def immediate(cls, attempts: int = 5) -> RetryPolicy:
        """Retries without waiting: for tests."""
        return cls(attempts=attempts, base_delay=0.0, max_delay=0.0)


async def retrying(
    func: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    should_retry: Callable[[Exception], bool],
) -> T:
    """Run ``func`` until it succeeds, fails in a way ``should_retry`` refuses, or attempts run out.

    The last exception propagates unchanged.
    """
    retries = 0

    def backoff(exc: Exception) -> bool | float:
        nonlocal retries
        if not should_retry(exc):
            return False
        retries += 1
        return full_jitter_delay(retries, base=policy.base_delay, cap=policy.max_delay, rng=policy.rng)

    async for attempt in stamina.retry_context(on=backoff, attempts=max(1, policy.attempts), timeout=None):
        with attempt:
            return await func()
    raise AssertionError("unreachable: stamina re-raises the last failure")  # pragma: no cover


class CircuitBreaker:
    """Closed -> open after ``threshold`` consecutive connection failures -> half-open after ``cooldown``.

    While open, calls fail fast with AWS_MCP_001 instead of each waiting out a time-out against a
    dead upstream. Half-open lets exactly one probe through: its success closes the circuit, its
    failure re-opens it for another cool-down.

    Args:
        threshold: Consecutive failures that open the circuit.
        cooldown: Seconds the circuit stays open before a probe is allowed.
        clock: Monotonic clock, injectable for tests.
    """

    def __init__(self, *, threshold: int = 5, cooldown: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    @property
    def state(self) -> CircuitState:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.cooldown:
            return "half_open"
        return "open"

    def before_call(self) -> bool:
        """Admit a call, or raise. Returns True if the call is the half-open probe.

        Raises:
            UpstreamUnavailable: AWS_MCP_001 while the circuit is open (or a probe is already out).
        """
        state = self.state
        if state == "closed":
            return False
        if state == "half_open" and not self._probing:
            self._probing = True
            return True
        assert self._opened_at is not None
        retry_in = max(0.0, self.cooldown - (self._clock() - self._opened_at))
        raise UpstreamUnavailable(
            f"The upstream AWS MCP server failed {self._failures} times in a row; not trying again for "
            f"{retry_in:.0f}s. Check get_server_status and the upstream's configuration.",
            details={"circuit": state, "retry_in_seconds": round(retry_in, 1), "consecutive_failures": self._failures},
        )

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def record_failure(self) -> None:
        self._failures += 1
        if self._probing or self._failures >= self.threshold:
            self._opened_at = self._clock()
        self._probing = False

    def release_probe(self) -> None:
        """The probe ended without a verdict (cancelled, bad input): let the next call probe."""
        self._probing = False

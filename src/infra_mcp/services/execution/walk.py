"""Walking the execution graph: bounded parallelism, each node as soon as what it needs succeeded.

Nodes start the moment their last prerequisite succeeds (no wave barriers), at most ``parallelism``
at a time, the longest remaining chain first. A node that fails takes every node behind it out of
the walk (``skipped``: never started); independent branches carry on.

Progress is counted in changes, in half steps: a change's start adds 0.5 and its end the rest
(0.5, or 1 for a change that never started), so every notification carries a value strictly
greater than the one before (MCP requires it) and the last one equals the number of changes.
While changes run, a "Still waiting" message every ``heartbeat`` seconds says which and for how long
(its value a thousandth above the last, so the half steps stay where they are).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import datetime

import anyio
import anyio.abc
import structlog

from infra_mcp.domain.execution_graph import Node, ReadyQueue
from infra_mcp.domain.plan import ChangeOutcome, ChangeOutcomeStatus
from infra_mcp.ports import ProgressReporter
from infra_mcp.services.execution.ledger import Ledger
from infra_mcp.services.execution.operations import NodeResult, NodeRunner

log = structlog.get_logger(__name__)


class Walk:
    """Runs the nodes of one execution and keeps each change's outcome."""

    def __init__(
        self,
        nodes: dict[str, Node],
        operations: NodeRunner,
        ledger: Ledger,
        outcomes: dict[str, ChangeOutcome],
        *,
        parallelism: int,
        clock: Callable[[], datetime],
        progress: ProgressReporter | None,
        heartbeat: float | None = None,
    ) -> None:
        self.nodes = nodes
        self.operations = operations
        self.ledger = ledger
        self.outcomes = outcomes
        self.parallelism = max(1, parallelism)
        self.clock = clock
        self.progress = progress
        self.heartbeat = heartbeat
        self.total = len(outcomes)
        self.done = 0
        self.progressed = 0.0  # see the module docstring
        self._reports: deque[tuple[float, str]] = deque()
        self._report_lock = anyio.Lock()
        self._sent = -1.0
        self._waiting = {k: len(n.needs) for k, n in nodes.items()}
        self._left = dict.fromkeys(outcomes, 0)
        for node in nodes.values():
            self._left[node.name] += 1
        self._failed_nodes: set[str] = set()
        self._queue = ReadyQueue()
        self._running = 0
        self._tg: anyio.abc.TaskGroup | None = None

    async def run(self) -> None:
        self._note(0.0, f"Executing {self.total} change(s)")
        await self._send_reports()
        async with anyio.create_task_group() as beside:
            if self.heartbeat and self.progress is not None:
                beside.start_soon(self._keep_telling, self.heartbeat)
            async with anyio.create_task_group() as tg:
                self._tg = tg
                for key, count in self._waiting.items():
                    if count == 0:
                        self._queue.push(self.nodes[key])
                self._dispatch()
            beside.cancel_scope.cancel()

    async def _keep_telling(self, every: float) -> None:
        """While changes run, say which ones we wait on (a hung upstream is then visible, not silent)."""
        beats_at: tuple[float, int] = (self._sent, 0)
        while True:
            await anyio.sleep(every)
            now = self.clock()
            running = [
                f"{o.action.value} {o.name} ({int((now - o.started_at).total_seconds())} s)"
                for o in self.outcomes.values()
                if o.status is ChangeOutcomeStatus.RUNNING and o.started_at is not None
            ]
            async with self._report_lock:
                level, beats = beats_at if beats_at[0] <= self._sent < beats_at[0] + 0.1 else (self._sent, 0)
                if not running or beats >= 99 or self.progress is None:
                    continue  # at most 99 per step: the values must stay below the next half step
                value = level + (beats + 1) / 1000
                beats_at = (level, beats + 1)
                self._sent = value
                message = "Still waiting on AWS: " + ", ".join(running[:5]) + (" ..." if len(running) > 5 else "")
                try:
                    await self.progress(value, self.total, message)
                except Exception as exc:  # a client gone away must not stop the execution
                    log.warning("progress_report_failed", error=type(exc).__name__)

    def _dispatch(self) -> None:
        assert self._tg is not None
        while self._running < self.parallelism and len(self._queue):
            key = self._queue.pop()
            self._running += 1
            self._tg.start_soon(self._run_node, key, name=f"execute {key}")

    async def _run_node(self, key: str) -> None:
        node = self.nodes[key]
        outcome = self.outcomes[node.name]
        if outcome.status is ChangeOutcomeStatus.PENDING:
            outcome.status = ChangeOutcomeStatus.RUNNING
            outcome.started_at = self.clock()
            self._note(0.5, f"{node.change.action.value} {node.name} ({node.change.type}) started")
            await self._send_reports()
        log.info("change_started", node=key, action=node.change.action.value, type=node.change.type)
        try:
            result = await self.operations.perform(node)
        finally:
            self._running -= 1
        newly_ready: list[str] = []
        if result.ok:
            for dependent in self.nodes[key].dependents:
                self._waiting[dependent] -= 1
                if self._waiting[dependent] == 0 and dependent not in self._failed_nodes:
                    newly_ready.append(dependent)
        self._record(node, result)
        skipped = [] if result.ok else self._skip_behind(key)
        # Settled in the ledger and concluded here in one synchronous step: a checkpoint that drops
        # this request's journal entry always saves the outcome it led to (never a stale 'running').
        for name in dict.fromkeys((node.name, *skipped)):
            self._conclude(name)
        for ready in newly_ready:
            self._queue.push(self.nodes[ready])
        self._dispatch()
        await self.ledger.result_recorded()
        await self._send_reports()

    def _record(self, node: Node, result: NodeResult) -> None:
        outcome = self.outcomes[node.name]
        if result.physical_id and (node.kind != "delete" or outcome.physical_id is None):
            outcome.physical_id = result.physical_id
        if result.request_token:
            outcome.request_token = result.request_token
        if not result.ok:
            self._failed_nodes.add(node.key)
            outcome.status = ChangeOutcomeStatus.FAILED
            outcome.error_code, outcome.error_message = result.error_code, result.error_message
            outcome.in_doubt = result.in_doubt
            log.warning("change_failed", node=node.key, error_code=result.error_code)
        else:
            log.info("change_succeeded", node=node.key, physical_id=result.physical_id)
        self._left[node.name] -= 1

    def _skip_behind(self, key: str) -> list[str]:
        """Take every node behind ``key`` out of the walk; return the changes now finished by it."""
        finished: list[str] = []
        stack = list(self.nodes[key].dependents)
        while stack:
            dependent = stack.pop()
            if dependent in self._failed_nodes:
                continue
            self._failed_nodes.add(dependent)
            node = self.nodes[dependent]
            outcome = self.outcomes[node.name]
            self._left[node.name] -= 1
            if outcome.status is ChangeOutcomeStatus.PENDING:
                outcome.status = ChangeOutcomeStatus.SKIPPED
                outcome.error_message = f"not started: {self.nodes[key].name} failed"
            elif outcome.status is not ChangeOutcomeStatus.FAILED:
                # Half of a replacement ran: the change as a whole did not complete.
                outcome.status = ChangeOutcomeStatus.FAILED
                outcome.error_code = "DependencyFailed"
                outcome.error_message = f"{dependent} not started: {self.nodes[key].name} failed"
            if self._left[node.name] == 0:
                finished.append(node.name)
            stack.extend(node.dependents)
        return finished

    def _conclude(self, name: str) -> None:
        """Mark the change finished once its last node is done (no await: see ``_run_node``)."""
        if self._left[name] != 0:
            return
        outcome = self.outcomes[name]
        if outcome.status is ChangeOutcomeStatus.RUNNING:
            outcome.status = ChangeOutcomeStatus.SUCCEEDED
        outcome.finished_at = self.clock()
        self.done += 1
        self._left[name] = -1  # concluded once
        step = 1.0 if outcome.started_at is None else 0.5  # a change that never started has both halves left
        self._note(step, f"{outcome.action.value} {name}: {outcome.status.value}")

    def _note(self, step: float, message: str) -> None:
        """Advance progress by ``step`` now and queue its notification (values queue in increasing order)."""
        self.progressed += step
        self._reports.append((min(self.progressed, float(self.total)), message))

    async def _send_reports(self) -> None:
        """Send the queued notifications in order, one sender at a time; never a value not above the last."""
        if self.progress is None:
            self._reports.clear()
            return
        async with self._report_lock:
            while self._reports:
                value, message = self._reports.popleft()
                if value <= self._sent:
                    continue
                self._sent = value
                try:
                    await self.progress(value, self.total, message)
                except Exception as exc:  # a client gone away must not stop the execution
                    log.warning("progress_report_failed", error=type(exc).__name__)

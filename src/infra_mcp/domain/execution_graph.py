"""The execution graph: one node per Cloud Control operation, edges from references both ways.

A plan's changes become nodes: ``create``, ``update``, ``delete`` and ``import`` are one node named
after the resource; a ``replace`` is two, ``<name>#create`` and ``<name>#delete``, ordered by its
``replacement_strategy``. Edges:

- every change waits for the changes its approved ``depends_on`` names (the fingerprinted order the
  approver saw, layered into :attr:`Plan.execution_order`): a node that makes a resource exist waits
  for what its new properties reference, and a delete for its dependents' deletes (reverse order).
  The graph is never re-derived from properties: what runs is the order that was approved;
- on top of that, execution only adds: a node that removes an old resource also waits, softly, for
  replacements' old halves and updates that move what state says depends on it away. A replacement whose strategy is delete-before-create can make those edges
circular (the dependent cannot let go before the new one exists); the softest edges are dropped to
break such a cycle, and AWS's answer then says truthfully whether the deletion could proceed.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from infra_mcp.domain.payload import dependencies_of
from infra_mcp.domain.plan import Action, Change, Plan
from infra_mcp.domain.state import StateResource
from infra_mcp.errors import ValidationFailed

Kind = Literal["create", "update", "delete", "import", "record"]


@dataclass
class Node:
    key: str
    change: Change
    kind: Kind
    needs: set[str] = field(default_factory=set)
    soft: set[str] = field(default_factory=set)  # may be dropped to break a cycle
    dependents: set[str] = field(default_factory=set)
    height: int = 0  # longest chain of nodes from here to the end: the critical path goes first

    @property
    def name(self) -> str:
        return self.change.name

    @property
    def operation(self) -> str:
        return self.kind.upper()


def _nodes_of(change: Change) -> list[Node]:
    if change.record_only:
        return [Node(change.name, change, "record")]  # accepted drift: the record changes, AWS is not called
    if change.action is Action.REPLACE:
        make = Node(f"{change.name}#create", change, "create")
        drop = Node(f"{change.name}#delete", change, "delete")
        if change.replacement_strategy == "delete_before_create":
            make.needs.add(drop.key)
        else:
            drop.needs.add(make.key)
        return [make, drop]
    kind: Kind = {
        Action.CREATE: "create",
        Action.UPDATE: "update",
        Action.DELETE: "delete",
        Action.IMPORT: "import",
    }[change.action]  # type: ignore[assignment]
    return [Node(change.name, change, kind)]


def build_graph(plan: Plan, state_resources: Iterable[StateResource]) -> dict[str, Node]:
    """Nodes of every actionable change of ``plan``, with their edges, acyclic.

    Raises:
        ValidationFailed: VALIDATION_001 if the plan's changes depend on each other in a cycle
            (nothing has been sent to AWS when this is raised).
    """
    nodes: dict[str, Node] = {}
    ready: dict[str, str] = {}  # name -> node after which its new version exists
    removal: dict[str, str] = {}  # name -> node that removes its old version
    moves: dict[str, str] = {}  # name -> update node that may move it off old references
    for change in plan.actionable_changes:
        for node in _nodes_of(change):
            nodes[node.key] = node
            if node.kind == "delete":
                removal[change.name] = node.key
            else:
                ready[change.name] = node.key
                if node.kind == "update":
                    moves[change.name] = node.key

    for node in nodes.values():
        # The approved order: forward nodes wait for what makes their targets exist, deletes for the
        # deletes of what depended on them (the planner puts exactly those in ``depends_on``).
        after = removal if node.kind == "delete" and node.change.action is Action.DELETE else ready
        if node.kind == "delete" and node.change.action is not Action.DELETE:
            continue  # a replacement's old half: ordered against its new half below
        for target in node.change.depends_on:
            if target in after and after[target] != node.key:
                node.needs.add(after[target])

    for node in list(nodes.values()):
        dbc = node.change.action is Action.REPLACE and node.change.replacement_strategy == "delete_before_create"
        if dbc and node.kind == "delete":
            # Delete the old one only once the new one can be created right after: never leave a gap
            # because something the new one needs failed.
            make = nodes[f"{node.name}#create"]
            node.needs |= make.needs - {node.key}

    old_dependents: dict[str, set[str]] = {}
    for resource in state_resources:
        for target in dependencies_of(resource.declared, resource.depends_on):
            old_dependents.setdefault(target, set()).add(resource.name)
    for name, key in removal.items():
        node = nodes[key]
        for dependent in old_dependents.get(name, ()):
            if dependent == name:
                continue
            dependent_change = plan.change(dependent)
            if dependent in removal and dependent_change is not None and dependent_change.action is Action.DELETE:
                continue  # an approved edge (the planner lists it in the delete's depends_on)
            if dependent in removal:
                node.soft.add(removal[dependent])
            elif dependent in moves:
                node.soft.add(moves[dependent])

    _break_cycles(nodes, plan.id)
    for node in nodes.values():
        for need in node.needs:
            nodes[need].dependents.add(node.key)
    _heights(nodes)
    return nodes


def _blocked(nodes: Mapping[str, Node]) -> set[str]:
    """Nodes Kahn's algorithm cannot place (on or behind a cycle)."""
    remaining = {k: len(n.needs | n.soft) for k, n in nodes.items()}
    dependents: dict[str, list[str]] = {k: [] for k in nodes}
    for key, node in nodes.items():
        for need in node.needs | node.soft:
            dependents[need].append(key)
    queue = [k for k, count in remaining.items() if count == 0]
    while queue:
        key = queue.pop()
        for dependent in dependents[key]:
            remaining[dependent] -= 1
            if remaining[dependent] == 0:
                queue.append(dependent)
    return {k for k, count in remaining.items() if count > 0}


def _break_cycles(nodes: dict[str, Node], plan_id: str) -> None:
    blocked = _blocked(nodes)
    if not blocked:
        for node in nodes.values():
            node.needs |= node.soft
        return
    for key in blocked:
        nodes[key].soft -= blocked
    blocked = _blocked(nodes)
    if blocked:
        raise ValidationFailed(
            f"Plan {plan_id} cannot be executed: its changes depend on each other in a cycle "
            f"({', '.join(sorted(blocked)[:10])}). Nothing was changed. Make a new plan.",
            details={"plan_id": plan_id, "cycle": sorted(blocked)[:50]},
        )
    for node in nodes.values():
        node.needs |= node.soft


def _heights(nodes: Mapping[str, Node]) -> None:
    """Longest path (in nodes) from each node to a sink, computed in reverse topological order."""
    indegree = {k: len(n.needs) for k, n in nodes.items()}
    order: list[str] = []
    frontier = [k for k, d in indegree.items() if d == 0]
    while frontier:
        key = frontier.pop()
        order.append(key)
        for dependent in nodes[key].dependents:
            indegree[dependent] -= 1
            if indegree[dependent] == 0:
                frontier.append(dependent)
    for key in reversed(order):
        node = nodes[key]
        node.height = 1 + max((nodes[d].height for d in node.dependents), default=0)


class ReadyQueue:
    """Ready nodes, highest first (longest remaining chain, then name for a stable order).

    Starting the node with the longest chain behind it first is the classic critical-path list
    scheduling rule: with a bounded number of slots it keeps the wall time near the critical path.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[int, str]] = []

    def push(self, node: Node) -> None:
        heapq.heappush(self._heap, (-node.height, node.key))

    def pop(self) -> str:
        return heapq.heappop(self._heap)[1]

    def __len__(self) -> int:
        return len(self._heap)

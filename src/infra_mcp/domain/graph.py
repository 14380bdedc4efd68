"""Dependency graphs of logical names: execution waves and cycles.

Everything here is iterative (no recursion), so a 100,000-resource chain neither hits Python's
recursion limit nor its stack. A graph is a mapping ``name -> names it depends on``; names a
node depends on that are not keys of the mapping are ignored (they are outside the part being
ordered, e.g. resources that already exist and do not change).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

Graph = Mapping[str, Iterable[str]]


def waves(graph: Graph) -> tuple[list[list[str]], list[str]]:
    """Group the nodes into waves; each wave depends only on nodes of earlier waves.

    Kahn's algorithm, layer by layer. Names inside a wave are sorted, so the same graph
    always gives the same order (plans are fingerprinted).

    Returns:
        ``(waves, blocked)``: the waves, and the nodes that could not be placed because they
        are on, or depend on, a cycle (empty when the graph is acyclic).
    """
    remaining, dependents, self_loops = _count(graph)
    current = sorted(n for n, count in remaining.items() if count == 0 and n not in self_loops)
    result: list[list[str]] = []
    placed = 0
    while current:
        result.append(current)
        placed += len(current)
        following: list[str] = []
        for name in current:
            for dependent in dependents.get(name, ()):
                remaining[dependent] -= 1
                if remaining[dependent] == 0 and dependent not in self_loops:
                    following.append(dependent)
        current = sorted(following)
    blocked = [] if placed == len(remaining) else sorted({n for n, c in remaining.items() if c > 0} | self_loops)
    return result, blocked


def _count(graph: Graph) -> tuple[dict[str, int], dict[str, list[str]], set[str]]:
    """In-degrees (within the graph), reversed edges and self-loops, in one pass."""
    remaining: dict[str, int] = {}
    dependents: dict[str, list[str]] = {}
    self_loops: set[str] = set()
    for name, ds in graph.items():
        count = 0
        for d in set(ds):
            if d == name:
                self_loops.add(name)
            elif d in graph:
                count += 1
                dependents.setdefault(d, []).append(name)
        remaining[name] = count
    return remaining, dependents, self_loops


def blocked_by_cycles(graph: Graph) -> list[str]:
    """The nodes on or behind a cycle (empty when acyclic); cheaper than :func:`waves`."""
    remaining, dependents, self_loops = _count(graph)
    ready = [n for n, count in remaining.items() if count == 0 and n not in self_loops]
    placed = 0
    while ready:
        name = ready.pop()
        placed += 1
        for dependent in dependents.get(name, ()):
            remaining[dependent] -= 1
            if remaining[dependent] == 0 and dependent not in self_loops:
                ready.append(dependent)
    if placed == len(remaining):
        return []
    return sorted({n for n, c in remaining.items() if c > 0} | self_loops)


def reverse(graph: Graph) -> dict[str, set[str]]:
    """The same graph with every edge turned round (``name -> names that depend on it``)."""
    turned: dict[str, set[str]] = {name: set() for name in graph}
    for name, ds in graph.items():
        for d in ds:
            if d in turned:
                turned[d].add(name)
    return turned


def find_cycles(graph: Graph) -> list[list[str]]:
    """Every cycle, as the sorted names of one strongly connected component (or a self-loop).

    Tarjan's algorithm with an explicit stack. Each component is reported once, however many
    distinct cycles run through it: the user must break at least one edge among those names.
    """
    index_of: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    counter = 0
    edges = {name: [d for d in ds if d in graph] for name, ds in graph.items()}

    for root in graph:
        if root in index_of:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, position = work.pop()
            if position == 0:
                index_of[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            children = edges[node]
            advanced = False
            while position < len(children):
                child = children[position]
                position += 1
                if child not in index_of:
                    work.append((node, position))
                    work.append((child, 0))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index_of[child])
            if advanced:
                continue
            if low[node] == index_of[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in edges[node]:
                    cycles.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    cycles.sort()
    return cycles

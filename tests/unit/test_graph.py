"""Dependency graphs: execution waves and cycles, without recursion."""

from __future__ import annotations

from infra_mcp.domain.graph import blocked_by_cycles, find_cycles, reverse, waves


def test_waves_put_each_node_after_everything_it_depends_on() -> None:
    graph = {"subnet": {"vpc"}, "vpc": set(), "sg": {"vpc"}, "web": {"subnet", "sg"}}
    order, blocked = waves(graph)
    assert order == [["vpc"], ["sg", "subnet"], ["web"]]
    assert blocked == []


def test_dependencies_outside_the_graph_are_ignored() -> None:
    order, _ = waves({"web": {"existing-subnet"}})
    assert order == [["web"]]


def test_nodes_on_or_behind_a_cycle_are_reported_as_blocked() -> None:
    graph = {"a": {"b"}, "b": {"a"}, "c": {"a"}, "d": set()}
    order, blocked = waves(graph)
    assert order == [["d"]]
    assert blocked == ["a", "b", "c"]
    assert blocked_by_cycles(graph) == ["a", "b", "c"]


def test_find_cycles_names_each_strongly_connected_component_once() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "x": {"x"}, "y": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c"], ["x"]]


def test_an_acyclic_graph_has_no_cycles() -> None:
    assert find_cycles({"a": {"b"}, "b": set()}) == []
    assert blocked_by_cycles({"a": {"b"}, "b": set()}) == []


def test_a_chain_of_100000_nodes_needs_no_recursion() -> None:
    n = 100_000
    chain = {f"n{i}": {f"n{i - 1}"} if i else set() for i in range(n)}
    order, blocked = waves(chain)
    assert len(order) == n
    assert not blocked
    chain["n0"] = {f"n{n - 1}"}
    cycles = find_cycles(chain)
    assert len(cycles) == 1
    assert len(cycles[0]) == n


def test_reverse_turns_every_edge_round() -> None:
    assert reverse({"a": {"b"}, "b": set()}) == {"a": set(), "b": {"a"}}

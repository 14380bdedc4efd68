"""Execution runs the order that was approved: each change after the changes its ``depends_on`` names.

The approver sees (and the fingerprint covers) every change's ``depends_on``, layered into the plan's
``execution_order``. The execution graph is built from those edges alone; it only adds edges inside a
replacement (its two halves) and soft edges that move dependents off a resource before it is removed.
"""

from __future__ import annotations

from infra_mcp.domain.execution_graph import build_graph
from infra_mcp.domain.plan import Action, Change, Plan, ResourceSpec
from infra_mcp.domain.refs import reference_targets
from tests.unit.plan_builders import applied, plan_for, resources, subnet, vpc


def _change(name: str, depends_on: list[str], **properties: object) -> Change:
    spec = ResourceSpec(name=name, type="AWS::S3::Bucket", properties=dict(properties))
    return Change(name=name, type=spec.type, action=Action.CREATE, desired=spec, depends_on=depends_on)


def test_a_change_waits_for_what_its_approved_depends_on_names_even_when_its_properties_do_not() -> None:
    plan = Plan(
        id="plan-0123456789ab",
        project_id="web",
        author="alice",
        base_serial=0,
        base_lineage=None,
        changes=[_change("first", []), _change("second", ["first"])],
        execution_order=[["first"], ["second"]],
    )
    nodes = build_graph(plan, [])
    assert nodes["second"].needs == {"first"}
    assert nodes["first"].needs == set()


def test_the_graph_takes_no_edge_from_properties_that_the_approved_order_leaves_out() -> None:
    plan = Plan(
        id="plan-0123456789ab",
        project_id="web",
        author="alice",
        base_serial=0,
        base_lineage=None,
        changes=[_change("first", []), _change("second", [], BucketName={"Ref": "first"})],
        execution_order=[["first", "second"]],
    )
    assert build_graph(plan, [])["second"].needs == set()


def test_the_planner_puts_every_reference_between_changes_in_the_approved_order() -> None:
    specs = resources(
        vpc("net"),
        subnet("sub", "net"),
        {
            "name": "sg",
            "type": "AWS::EC2::SecurityGroup",
            "properties": {"GroupDescription": "web", "VpcId": {"Fn::GetAtt": ["net", "VpcId"]}},
            "depends_on": ["sub"],
        },
    )
    plan = plan_for(specs)
    names = {c.name for c in plan.changes}
    for change in plan.changes:
        assert change.desired is not None
        referenced = (reference_targets(change.desired.properties) | set(change.desired.depends_on)) & names
        assert referenced <= set(change.depends_on)
    nodes = build_graph(plan, [])
    assert nodes["sub"].needs == {"net"}
    assert nodes["sg"].needs == {"net", "sub"}
    assert plan.execution_order == [["net"], ["sub"], ["sg"]]


def test_deletes_follow_the_approved_reverse_order_and_replacements_keep_their_halves_ordered() -> None:
    old = resources(vpc("net"), subnet("sub", "net"), vpc("other", "10.1.0.0/16"))
    state = applied(old)
    plan = plan_for(resources(vpc("other", "10.2.0.0/16")), state)
    actions = {c.name: c.action for c in plan.changes}
    assert actions == {"net": Action.DELETE, "sub": Action.DELETE, "other": Action.REPLACE}
    assert plan.change("net").depends_on == ["sub"]  # type: ignore[union-attr]
    nodes = build_graph(plan, state.resources)
    assert nodes["net"].needs == {"sub"}
    assert nodes["sub"].needs == set()
    assert nodes["other#delete"].needs == {"other#create"}
    waves = {name: i for i, wave in enumerate(plan.execution_order) for name in wave}
    for node in nodes.values():
        for need in node.needs:
            if nodes[need].name != node.name:
                assert waves[nodes[need].name] < waves[node.name]

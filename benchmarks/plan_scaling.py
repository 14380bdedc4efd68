"""How planning scales with the size of the project.

For 1,000 / 10,000 / 100,000 resources this builds a current state (a realistic mix of types
wired together by references) and a desired state that changes 1 % of them (tag edits, in-place
updates, replacements, additions and removals), then measures in the same run:

* ``json``: the time the standard library takes just to ``json.loads`` the two documents;
* ``state``: loading the state document into the model (the state store's work, shown apart);
* ``plan``: what the ``plan_changes`` use case computes, through the same service methods
  (``PlanningService.parse_full`` then ``PlanningService.draft``): parse and graph, CloudFormation's
  conversions and sealing, diff, validation of the changed resources (registry schema, then
  cloudformation-validate as a first pass and cfn-lint where it is needed), risk, cost from the
  bundled prices, ordering, fingerprint. Only reading the state and storing the plan are left out;
* ``lint``: the part of ``plan`` spent linting (both validators);
* ``ratio``: plan / json, each the best of 3 runs (2 at 100,000);
* ``peak``: peak memory traced during the plan (tracemalloc).

Targets on a 2-core machine: 10,000 resources in under 1 s, 100,000 in under 10 s, ratio under 5.

Run: ``.venv/bin/python benchmarks/plan_scaling.py [sizes...]``
"""

from __future__ import annotations

import atexit
import gc
import json
import random
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from infra_mcp.catalog.registry import Catalog
from infra_mcp.domain import validation
from infra_mcp.domain.plan import Plan
from infra_mcp.domain.state import StateFile
from infra_mcp.services.planning import PlanningService
from infra_mcp.services.secrets import SecretSealer

_lint_seconds = [0.0]
_lint = validation.lint_findings


def _timed_lint(*args: Any, **kwargs: Any) -> Any:
    started = time.perf_counter()
    try:
        return _lint(*args, **kwargs)
    finally:
        _lint_seconds[0] += time.perf_counter() - started


# Measure how much of the plan is cfn-lint (the wrapper adds nothing measurable).
validation.lint_findings = _timed_lint  # type: ignore[assignment]

UNIT = 10  # resources per "application unit" below


def _unit(i: int) -> list[dict[str, Any]]:
    """Ten resources that belong together, as declared (references unresolved)."""
    p = f"u{i}"
    third, fourth = (i // 250) % 250, i % 250
    return [
        {"name": f"{p}-vpc", "type": "AWS::EC2::VPC", "properties": {"CidrBlock": f"10.{third}.0.0/16"}},
        {
            "name": f"{p}-subnet-a",
            "type": "AWS::EC2::Subnet",
            "properties": {"VpcId": {"Ref": f"{p}-vpc"}, "CidrBlock": f"10.{third}.{fourth}.0/24"},
        },
        {
            "name": f"{p}-subnet-b",
            "type": "AWS::EC2::Subnet",
            "properties": {"VpcId": {"Ref": f"{p}-vpc"}, "CidrBlock": f"10.{third}.{(fourth + 1) % 250}.0/24"},
        },
        {
            "name": f"{p}-sg",
            "type": "AWS::EC2::SecurityGroup",
            "properties": {
                "GroupDescription": f"web tier {i}",
                "VpcId": {"Ref": f"{p}-vpc"},
                "SecurityGroupIngress": [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": "0.0.0.0/0"}],
            },
        },
        {"name": f"{p}-rt", "type": "AWS::EC2::RouteTable", "properties": {"VpcId": {"Ref": f"{p}-vpc"}}},
        {
            "name": f"{p}-web",
            "type": "AWS::EC2::Instance",
            "properties": {
                "InstanceType": "t3.micro",
                "ImageId": "ami-0abcdef1234567890",
                "SubnetId": {"Ref": f"{p}-subnet-a"},
                "SecurityGroupIds": [{"Ref": f"{p}-sg"}],
            },
        },
        {
            "name": f"{p}-data",
            "type": "AWS::EC2::Volume",
            "properties": {"AvailabilityZone": "us-east-1a", "Size": 20, "VolumeType": "gp3"},
        },
        {"name": f"{p}-assets", "type": "AWS::S3::Bucket", "properties": {}},
        {"name": f"{p}-queue", "type": "AWS::SQS::Queue", "properties": {"VisibilityTimeout": 60}},
        {
            "name": f"{p}-logs",
            "type": "AWS::Logs::LogGroup",
            "properties": {"RetentionInDays": 14},
        },
    ]


def build(n: int, seed: int = 7) -> tuple[str, str, int]:
    """(state JSON, desired JSON with 1 % changed, number of changes)."""
    rng = random.Random(seed)
    declared = [r for i in range(n // UNIT) for r in _unit(i)]
    resources = []
    for k, item in enumerate(declared):
        tags = {"Environment": "prod", "Team": f"team-{k % 17}"}
        reported = {**item["properties"], "Id": f"id-{k:08x}", "Arn": f"arn:aws:x:us-east-1:123456789012:r/{k:08x}"}
        resources.append(
            {
                "id": f"id-{k:08x}",
                "name": item["name"],
                "type": item["type"],
                "arn": None,
                "region": "us-east-1",
                "properties": reported,
                "declared": item["properties"],
                "tags": tags,
                "dependsOn": [],
                "status": "active",
                "createdAt": "2026-01-15T10:30:00Z",
                "updatedAt": "2026-01-15T10:30:00Z",
            }
        )
        item["tags"] = dict(tags)
    state = {
        "version": "1.0.0",
        "projectId": "bench",
        "serial": 7,
        "lineage": "9a7b3c1e-0000-4000-8000-000000000000",
        "timestamp": "2026-01-15T10:30:00Z",
        "metadata": {"lastModifiedBy": "bench", "changeDescription": "", "changePlanId": None, "checksum": ""},
        "resources": resources,
    }

    desired = [json.loads(json.dumps(r)) for r in declared] if n <= 1000 else [dict(r) for r in declared]
    changes = max(1, n // 100)
    picks = rng.sample(range(len(desired)), changes)
    removed: set[int] = set()
    added = []
    for j, k in enumerate(picks):
        item = desired[k] = {
            **desired[k],
            "properties": dict(desired[k]["properties"]),
            "tags": dict(desired[k]["tags"]),
        }
        kind = j % 10
        if kind < 4:  # tag edit
            item["tags"]["CostCenter"] = f"cc-{j}"
        elif kind < 6:  # in-place update
            if item["type"] == "AWS::EC2::Instance":
                item["properties"]["InstanceType"] = "t3.small"
            elif item["type"] == "AWS::SQS::Queue":
                item["properties"]["VisibilityTimeout"] = 120
            else:
                item["tags"]["Owner"] = "platform"
        elif kind < 7 and item["type"] in ("AWS::EC2::Volume", "AWS::Logs::LogGroup"):  # replacement
            item["properties"]["AvailabilityZone" if item["type"] == "AWS::EC2::Volume" else "LogGroupName"] = (
                "us-east-1b" if item["type"] == "AWS::EC2::Volume" else f"/bench/{j}"
            )
        elif kind < 9:  # addition, each one different (no two new resources alike)
            unit = item["name"].split("-")[0]
            added.append(
                [
                    {
                        "name": f"new-{j}",
                        "type": "AWS::SQS::Queue",
                        "properties": {"VisibilityTimeout": 30 + j % 900, "MessageRetentionPeriod": 3600 + j},
                    },
                    {
                        "name": f"new-{j}",
                        "type": "AWS::EC2::Volume",
                        "properties": {"AvailabilityZone": "us-east-1c", "Size": 10 + j % 500, "VolumeType": "gp3"},
                    },
                    {
                        "name": f"new-{j}",
                        "type": "AWS::EC2::Subnet",
                        "properties": {
                            "VpcId": {"Ref": f"{unit}-vpc"},
                            "CidrBlock": f"10.{j % 250}.{200 + j % 50}.0/24",
                        },
                    },
                ][j % 3]
                | {"tags": {"Environment": "prod", "Change": str(j)}}
            )
        elif item["type"] in ("AWS::S3::Bucket", "AWS::SQS::Queue", "AWS::Logs::LogGroup", "AWS::EC2::Volume"):
            removed.add(k)  # removal of a leaf
        else:
            item["tags"]["Reviewed"] = "yes"
    doc = {"resources": [r for k, r in enumerate(desired) if k not in removed] + added}
    return json.dumps(state), json.dumps(doc), changes


_services: dict[int, PlanningService] = {}


def _service(catalog: Catalog) -> PlanningService:
    """The planning service as production wires it, minus the stores (nothing is stored here)."""
    found = _services.get(id(catalog))
    if found is None:
        folder = tempfile.mkdtemp(prefix="plan-scaling-")
        atexit.register(shutil.rmtree, folder, True)
        key = Path(folder) / "secrets.key"
        found = _services[id(catalog)] = PlanningService(
            projects=None,  # type: ignore[arg-type]  # never reached: parse_full and draft store nothing
            states=None,  # type: ignore[arg-type]
            catalog=catalog,
            sealer=SecretSealer(key),
            notary=None,  # type: ignore[arg-type]
        )
    return found


def _plan_once(desired_doc: Any, state: StateFile, catalog: Catalog) -> Plan:
    """What is timed: the CPU work of the ``plan_changes`` use case, the very methods it calls.

    ``parse_full`` (parse, references, graph) then ``draft`` (CloudFormation's conversions and
    sealing, diff, validation with lint, risk, cost from the bundled prices, order, fingerprint).
    Left out: reading the state (the ``state`` column) and storing the plan.
    """
    service = _service(catalog)
    specs = service.parse_full(desired_doc, default_region="us-east-1")
    return service.draft(
        project_id="bench",
        user="bench",
        description="benchmark",
        kind="full",
        desired=specs,
        current=state,
        full=True,
    )


def measure(n: int, catalog: Catalog) -> dict[str, float]:
    state_json, desired_json, changes = build(n)
    repeats = 3 if n <= 10_000 else 2
    # Both sides of the ratio are the best of ``repeats`` runs, so a busy machine moves each less.
    parse = float("inf")
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        state_doc = json.loads(state_json)
        desired_doc = json.loads(desired_json)
        parse = min(parse, time.perf_counter() - t0)

    t0 = time.perf_counter()
    state = StateFile.model_validate(state_doc)
    load = time.perf_counter() - t0

    gc.collect()
    tracemalloc.start()
    t0 = time.perf_counter()
    plan = _plan_once(desired_doc, state, catalog)
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # The traced run is slower than an untraced one; time untraced runs too. Nothing is cached
    # between runs (the planner keeps no results), so each is as cold as the first.
    untraced, lint = float("inf"), 0.0
    for _ in range(repeats):
        gc.collect()
        _lint_seconds[0] = 0.0
        t0 = time.perf_counter()
        plan = _plan_once(desired_doc, state, catalog)
        took = time.perf_counter() - t0
        if took < untraced:
            untraced, lint = took, _lint_seconds[0]
    return {
        "resources": n,
        "changed": changes,
        "actions": len(plan.changes),
        "mb": (len(state_json) + len(desired_json)) / 1e6,
        "json": parse,
        "state": load,
        "plan": untraced,
        "plan_traced": elapsed,
        "lint": lint,
        "peak_mb": peak / 1e6,
        "ratio": untraced / parse,
    }


def main(argv: list[str]) -> None:
    sizes = [int(a) for a in argv] or [1_000, 10_000, 100_000]
    catalog = Catalog()
    # Warm-up outside the measurements: loading cfn-lint's rules and the type schemas is a
    # once-per-process cost (about 1-2 s), not a per-plan one.
    t0 = time.perf_counter()
    validation.warm_up()
    measure(100, catalog)
    warm = time.perf_counter() - t0
    print(f"warm-up (cfn-lint rules, schemas; once per process): {warm:.2f} s")
    header = (
        f"{'resources':>10} {'changed':>8} {'actions':>8} {'docs MB':>8} {'json s':>8} {'state s':>8} "
        f"{'plan s':>8} {'lint s':>7} {'ratio':>6} {'peak MB':>8}"
    )
    print(header)
    for n in sizes:
        r = measure(n, catalog)
        print(
            f"{r['resources']:>10,} {r['changed']:>8,} {r['actions']:>8,} {r['mb']:>8.1f} {r['json']:>8.3f} "
            f"{r['state']:>8.3f} {r['plan']:>8.3f} {r['lint']:>7.3f} {r['ratio']:>6.2f} {r['peak_mb']:>8.1f}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])

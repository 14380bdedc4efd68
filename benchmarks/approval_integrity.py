"""What approval trust costs on a large plan: security findings, fingerprint, MACs.

Builds a plan of N creations (VPCs with a few properties, and every tenth a security group with
an ingress rule, so the security rules have something to read), then times in one run:

* ``risk``: ``with_risk`` over every change (type risk plus the security rules);
* ``fingerprint``: one SHA-256 over the plan's canonical content (what approval binds to);
* ``sign``: ``Notary.sign_plan`` (fingerprint + content MAC), done once when the plan is made;
* ``verify``: ``Notary.verify`` (one fingerprint, both MACs), done before approval and twice
  before execution.

Run: ``.venv/bin/python benchmarks/approval_integrity.py [sizes...]`` (default 1,000 and 10,000).
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta

from infra_mcp.domain.integrity import Notary
from infra_mcp.domain.plan import Action, Approval, ApprovalMethod, Change, Plan, ResourceSpec
from infra_mcp.domain.risk import with_risk


def _changes(n: int) -> list[Change]:
    out = []
    for i in range(n):
        if i % 10 == 0:
            props = {
                "GroupDescription": "web",
                "SecurityGroupIngress": [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIp": "0.0.0.0/0"}],
            }
            kind = "AWS::EC2::SecurityGroup"
        else:
            props = {
                "CidrBlock": f"10.{i % 250}.0.0/16",
                "EnableDnsSupport": True,
                "Tags": [{"Key": "a", "Value": "b"}],
            }
            kind = "AWS::EC2::VPC"
        spec = ResourceSpec(name=f"r{i}", type=kind, properties=props)
        out.append(Change(name=f"r{i}", type=kind, action=Action.CREATE, desired=spec))
    return out


def measure(n: int, notary: Notary) -> tuple[float, float, float, float, int]:
    """Seconds for risk, fingerprint, sign and verify on ``n`` creations, and the findings count."""
    changes = _changes(n)
    t0 = time.perf_counter()
    risked = [with_risk(c) for c in changes]
    risk = time.perf_counter() - t0
    plan = Plan(id="plan-bench", project_id="bench", author="a", base_serial=0, base_lineage=None, changes=risked)
    t0 = time.perf_counter()
    plan.compute_fingerprint()
    fingerprint = time.perf_counter() - t0
    t0 = time.perf_counter()
    signed = notary.sign_plan(plan)
    sign = time.perf_counter() - t0
    now = datetime.now(UTC)
    approval = Approval(
        approved_by="alice",
        approved_at=now,
        method=ApprovalMethod.ELICITATION,
        fingerprint=signed.fingerprint,
        expires_at=now + timedelta(hours=1),
    )
    approved = signed.model_copy(update={"approval": notary.sign_approval(signed, approval)})
    t0 = time.perf_counter()
    verdict = notary.verify(approved)
    verify = time.perf_counter() - t0
    assert verdict.plan_genuine
    assert verdict.approval_genuine
    return risk, fingerprint, sign, verify, sum(len(c.security_findings) for c in risked)


def main(argv: list[str]) -> None:
    sizes = [int(a) for a in argv] or [1_000, 10_000]
    notary = Notary(b"benchmark server key, 32 bytes!!")
    print(f"{'changes':>8} {'risk s':>8} {'fingerprint s':>14} {'sign s':>8} {'verify s':>9} {'findings':>9}")
    for n in sizes:
        risk, fingerprint, sign, verify, findings = measure(n, notary)
        print(f"{n:>8,} {risk:>8.3f} {fingerprint:>14.3f} {sign:>8.3f} {verify:>9.3f} {findings:>9,}")


if __name__ == "__main__":
    main(sys.argv[1:])

"""Keyed MACs that bind plans, approvals and the audit chain to the server's key.

A plan's fingerprint is a plain SHA-256 of its content: anyone who can edit the database can edit
a plan and recompute it. The MACs here are HMAC-SHA256 under a key the server keeps outside the
database (``services/keys``), so an edited plan, a forged approval row or a rewritten audit entry
no longer verifies. Pure functions over bytes: no key is read here.

Each purpose uses its own key, derived from the server key with a label, so a MAC made for one
purpose can never be replayed as another's.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from infra_mcp.domain.plan import Approval, Plan

_LABELS = {
    "plan": b"infra-mcp plan content v1",
    "approval": b"infra-mcp approval v1",
    "audit": b"infra-mcp audit chain v1",
    "digest": b"infra-mcp secret digest v1",
    "request-state": b"infra-mcp mcp request state v1",
}


def derive(key: bytes, purpose: str) -> bytes:
    """The sub-key for ``purpose`` (one of plan, approval, audit, digest, request-state)."""
    return hmac.new(key, _LABELS[purpose], hashlib.sha256).digest()


def _mac(key: bytes, message: dict[str, Any]) -> str:
    body = json.dumps(message, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return "hmac-sha256:" + hmac.new(key, body, hashlib.sha256).hexdigest()


def _iso(value: datetime) -> str:
    return value.isoformat()


class Notary:
    """Signs and checks plans and approvals with keys derived from the server key.

    Args:
        key: The server key (32 random bytes, kept outside the database).
    """

    def __init__(self, key: bytes) -> None:
        self._plan_key = derive(key, "plan")
        self._approval_key = derive(key, "approval")

    def plan_mac(self, plan: Plan, fingerprint: str) -> str:
        """MAC over what identifies a plan's content: id, project and its fingerprint."""
        return _mac(self._plan_key, {"plan_id": plan.id, "project_id": plan.project_id, "fingerprint": fingerprint})

    def sign_plan(self, plan: Plan) -> Plan:
        """``plan`` with its fingerprint and content MAC set (call once, when the plan is made)."""
        fingerprint = plan.compute_fingerprint()
        return plan.model_copy(update={"fingerprint": fingerprint, "content_mac": self.plan_mac(plan, fingerprint)})

    def approval_mac(self, plan: Plan, approval: Approval) -> str:
        """MAC over who approved which fingerprint of which plan, how, when and until when."""
        return _mac(
            self._approval_key,
            {
                "plan_id": plan.id,
                "project_id": plan.project_id,
                "author": plan.author,
                "fingerprint": approval.fingerprint,
                "approved_by": approval.approved_by,
                "approved_at": _iso(approval.approved_at),
                "method": approval.method.value,
                "expires_at": _iso(approval.expires_at),
            },
        )

    def sign_approval(self, plan: Plan, approval: Approval) -> Approval:
        return approval.model_copy(update={"mac": self.approval_mac(plan, approval)})

    def verify(self, plan: Plan) -> Verdict:
        """Check the plan's content MAC and its approval's MAC against one fresh fingerprint.

        The fingerprint is computed once here (it is the costly part on a large plan) and
        returned, so callers need not compute it again.
        """
        fingerprint = plan.compute_fingerprint()
        plan_ok = (
            bool(plan.content_mac)
            and hmac.compare_digest(plan.fingerprint, fingerprint)
            and hmac.compare_digest(plan.content_mac, self.plan_mac(plan, fingerprint))
        )
        approval = plan.approval
        approval_ok = (
            approval is not None
            and bool(approval.mac)
            and hmac.compare_digest(approval.fingerprint, fingerprint)
            and hmac.compare_digest(approval.mac, self.approval_mac(plan, approval))
        )
        return Verdict(fingerprint=fingerprint, plan_genuine=plan_ok, approval_genuine=approval_ok)

    def plan_is_genuine(self, plan: Plan) -> bool:
        """True if the stored content still matches the MAC the server made for it."""
        return self.verify(plan).plan_genuine

    def approval_is_genuine(self, plan: Plan) -> bool:
        """True if ``plan.approval`` is one the server signed, for this plan's current content."""
        return self.verify(plan).approval_genuine


@dataclass(frozen=True)
class Verdict:
    """What :meth:`Notary.verify` found, with the fingerprint it computed."""

    fingerprint: str
    plan_genuine: bool
    approval_genuine: bool


class AuditChain:
    """Links audit entries: each entry's hash covers its content and the previous entry's hash.

    Keyed, so someone who edits or deletes rows cannot recompute a consistent chain.
    """

    def __init__(self, key: bytes) -> None:
        self._key = derive(key, "audit")

    def link(self, previous: str, entry: dict[str, Any]) -> str:
        """The hash of ``entry`` (its JSON without ``hash``) following ``previous``."""
        body = {k: v for k, v in entry.items() if k != "hash"}
        return _mac(self._key, {"prev": previous, "entry": body})

"""A plan as text a person reads at a glance, in the manner of ``terraform plan``.

::

      + create            ~ update in-place
    -/+ replace           - destroy

Each change lists its changed attributes (``before -> after``), with ``# forces replacement``
next to the create-only ones, ``(known after apply)`` for values that exist only once something
else is created, and ``(sensitive value)`` for secrets. Risk, cost, findings and the summary line
(``Plan: 3 to add, 1 to change, 1 to replace, 2 to destroy.``) follow.
"""

from __future__ import annotations

import json
from typing import Any

from infra_mcp.domain.plan import (
    KNOWN_AFTER_APPLY,
    SENSITIVE,
    Action,
    Change,
    Plan,
    PlanSummary,
    PropertyChange,
)
from infra_mcp.domain.policies import snapshot_note

MAX_CHANGES_SHOWN = 500
MAX_ATTRIBUTES_SHOWN = 60
MAX_VALUE = 120
MAX_VALUE_LINES = 40

_SYMBOL = {
    Action.CREATE: "  +",
    Action.UPDATE: "  ~",
    Action.REPLACE: "-/+",
    Action.DELETE: "  -",
    Action.IMPORT: "<= import",
    Action.NOOP: "   ",
}
_HEADLINE = {
    Action.CREATE: "will be created",
    Action.UPDATE: "will be updated in-place",
    Action.REPLACE: "must be replaced",
    Action.DELETE: "will be destroyed",
    Action.IMPORT: "will be imported",
    Action.NOOP: "is unchanged",
}


def summary_line(summary: PlanSummary) -> str:
    """``Plan: 3 to add, 1 to change, 1 to replace, 2 to destroy.`` (or ``No changes.``)."""
    if not (summary.create or summary.update or summary.replace or summary.delete or summary.import_):
        return "No changes. Your infrastructure matches the desired state."
    parts = [
        f"{summary.create} to add",
        f"{summary.update} to change",
        f"{summary.replace} to replace",
        f"{summary.delete} to destroy",
    ]
    if summary.import_:
        parts.insert(0, f"{summary.import_} to import")
    return "Plan: " + ", ".join(parts) + "."


def _value(value: Any, indent: str = "        ") -> str:
    """A value on one line when it fits, else nested values over several lines (like ``terraform plan``).

    Long scalars are still cut: a 4 KB policy string on one line helps nobody; nested values are
    cut after :data:`MAX_VALUE_LINES` lines, pointing at the plan JSON for the rest.
    """
    if value in (KNOWN_AFTER_APPLY, SENSITIVE):
        return str(value)
    text = json.dumps(value, ensure_ascii=False, default=str, separators=(", ", ": "))
    if len(text) <= MAX_VALUE:
        return text
    if not isinstance(value, dict | list):
        return text[: MAX_VALUE - 4] + " ..."
    lines = json.dumps(value, ensure_ascii=False, default=str, indent=2).splitlines()
    if len(lines) > MAX_VALUE_LINES:
        lines = [*lines[: MAX_VALUE_LINES - 1], "  ... (more in the plan JSON)"]
    return ("\n" + indent).join(line if len(line) <= MAX_VALUE else line[: MAX_VALUE - 4] + " ..." for line in lines)


def _attribute(change: Change, pc: PropertyChange, width: int) -> str:
    label = pc.path.lstrip("/").ljust(width)
    note = "  # forces replacement" if pc.requires_replacement else ""
    if change.action is Action.CREATE or (pc.before is None and pc.after is not None):
        return f"      + {label} = {_value(pc.after)}{note}"
    if change.action is Action.DELETE or pc.after is None:
        return f"      - {label} = {_value(pc.before)} -> null{note}"
    return f"      ~ {label} = {_value(pc.before)} -> {_value(pc.after)}{note}"


def render_change(change: Change) -> list[str]:
    """The lines for one change."""
    headline = f"  # {change.name} ({change.type}) {_HEADLINE[change.action]}"
    if change.physical_id:
        headline += f" [{change.physical_id}]"
    lines = [headline]
    if change.record_only:
        lines.append("  #   drift accepted: only the record changes to what is live; nothing is sent to AWS")
    elif change.action is Action.CREATE and change.physical_id:
        lines.append("  #   deleted outside infra-mcp (drift): re-created; it will get a new id")
    elif change.live_values is not None:
        lines.append("  #   planned against the live resource (refresh): restores what was declared")
    if change.action is Action.IMPORT:
        lines.append("  #   adopted as it is: nothing is created or changed in AWS")
    if change.retained and change.action is Action.REPLACE:
        lines.append("  #   UpdateReplacePolicy Retain: the old one is left in place in AWS and dropped from state")
    elif change.retained:
        lines.append("  #   DeletionPolicy Retain: left in place in AWS and dropped from state, not deleted")
    if change.snapshot is not None:
        policy = "DeletionPolicy" if change.action is Action.DELETE else "UpdateReplacePolicy"
        lines.append(f"  #   {snapshot_note(policy, change.snapshot, change.previous_type or change.type)}")
    if change.action is Action.REPLACE:
        if change.replacement_strategy == "delete_before_create":
            lines.append("  #   the old one is deleted first (its fixed name would collide): expect an interruption")
        elif change.replacement_strategy == "create_before_delete":
            lines.append("  #   the new one is created before the old one is deleted")
        lines.extend(f"  #   because {reason}" for reason in change.replacement_reasons)
    lines.extend(f"  #   interruption: {what}" for what in change.interruptions)
    if change.depends_on:
        lines.append(f"  #   after: {', '.join(change.depends_on[:10])}{' ...' if len(change.depends_on) > 10 else ''}")
    lines.append(f'{_SYMBOL[change.action]} resource "{change.type}" "{change.name}" {{')
    shown = change.property_changes[:MAX_ATTRIBUTES_SHOWN]
    width = max((len(pc.path) - 1 for pc in shown), default=0)
    lines.extend(_attribute(change, pc, width) for pc in shown)
    if len(change.property_changes) > len(shown):
        lines.append(f"        # ... {len(change.property_changes) - len(shown)} more attribute(s) in the plan JSON")
    lines.append("    }")
    return lines


def render_plan(plan: Plan) -> str:
    """The whole plan as text: header, changes, risk, cost, findings, summary line."""
    base = f"state serial {plan.base_serial}" if plan.base_lineage else "an empty state"
    lines = [f"Plan {plan.id} for project {plan.project_id} ({plan.kind}, against {base}) - {plan.status.value}"]
    if plan.description:
        lines.append(f"  {plan.description}  (by {plan.author})")
    else:
        lines.append(f"  by {plan.author}")
    lines.append("")
    actionable = plan.actionable_changes
    if actionable:
        symbols = "Symbols:  + create   ~ update in-place   -/+ replace   - destroy"
        if plan.summary.import_:
            symbols += "   <= import"
        lines.append(symbols)
        lines.append("")
        for change in actionable[:MAX_CHANGES_SHOWN]:
            lines.extend(render_change(change))
            lines.append("")
        if len(actionable) > MAX_CHANGES_SHOWN:
            lines.append(f"  ... {len(actionable) - MAX_CHANGES_SHOWN} more change(s) in the plan JSON")
            lines.append("")
    if plan.summary.no_op:
        lines.append(f"{plan.summary.no_op} resource(s) unchanged.")
        lines.append("")

    lines.append(f"Risk: {plan.risk.value.upper()}")
    lines.extend(f"  - {reason}" for reason in plan.risk_reasons)
    lines.append("")
    lines.extend(_cost(plan))
    if plan.findings:
        lines.append(f"Findings ({len(plan.findings)}):")
        for finding in plan.findings[:100]:
            where = f"{finding.resource or ''}{finding.path}"
            lines.append(f"  {finding.severity} {finding.rule} {where}: {finding.message}")
        if len(plan.findings) > 100:
            lines.append(f"  ... {len(plan.findings) - 100} more in the plan JSON")
        lines.append("")
    lines.append(plan.summary.text or summary_line(plan.summary))
    return "\n".join(lines)


def _money(amount: float) -> str:
    return f"{amount:,.2f}"


def _cost(plan: Plan) -> list[str]:
    cost = plan.cost
    sign = "+" if cost.monthly_delta >= 0 else "-"
    lines = [
        f"Cost (monthly, {cost.currency}): {_money(cost.monthly_before)} -> {_money(cost.monthly_after)} "
        f"({sign}{_money(abs(cost.monthly_delta))})"
    ]
    for line in cost.lines[:100]:
        lines.append(
            f"  {line.name} ({line.type}): {_money(line.monthly_before)} -> {_money(line.monthly_after)}"
            f"  [{line.unit_price}]"
        )
    if len(cost.lines) > 100:
        lines.append(f"  ... {len(cost.lines) - 100} more line(s) in the plan JSON")
    if cost.unpriced:
        lines.append("  Not priced (not counted above):")
        lines.extend(f"    {u.name} ({u.type}): {u.reason}" for u in cost.unpriced[:50])
        if len(cost.unpriced) > 50:
            lines.append(f"    ... {len(cost.unpriced) - 50} more in the plan JSON")
    if cost.source:
        lines.append(f"  Source: {cost.source}")
    lines.append("")
    return lines

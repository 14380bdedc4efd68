"""The bundled price table: the file read once, handed to the domain as :class:`~infra_mcp.domain.cost.Pricing`."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from infra_mcp.domain.cost import BundledPricing

PRICE_TABLE = "prices_2026_10.json"


@cache
def bundled_pricing() -> BundledPricing:
    """Prices from the table shipped with infra-mcp (read on first use, then shared)."""
    text = resources.files("infra_mcp.catalog").joinpath(PRICE_TABLE).read_text(encoding="utf-8")
    table: dict[str, Any] = json.loads(text)
    return BundledPricing(table)

"""The few read calls outside Cloud Control that agents make through the same upstream.

STS ``GetCallerIdentity`` lives in :mod:`~infra_mcp.sandbox.identity`; here are EC2
``DescribeRegions``/``DescribeAvailabilityZones`` (what ``Fn::GetAZs`` needs) and S3 ``ListBuckets``.
Answers are shaped as boto3 returns them (PascalCase); each wire protocol serialises them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from infra_mcp.sandbox.errors import CloudControlError
from infra_mcp.sandbox.identity import SANDBOX_ACCOUNT_ID, SANDBOX_USER

BUCKET_TYPE = "AWS::S3::Bucket"
# Three zones per region: enough for Fn::GetAZs and Fn::Select up to 2, which is what templates use.
_ZONE_LETTERS = "abc"


def _names(params: dict[str, Any], key: str) -> list[str]:
    value = params.get(key) or []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def describe_regions(params: dict[str, Any], known: Iterable[str]) -> dict[str, Any]:
    """EC2 ``DescribeRegions``; ``RegionNames`` narrows the answer, an unknown name is refused as EC2 does."""
    regions = sorted(known)
    wanted = _names(params, "RegionNames")
    unknown = sorted(set(wanted) - set(regions))
    if unknown:
        raise CloudControlError("InvalidParameterValue", f"Invalid region names: {', '.join(unknown)}")
    if wanted:
        regions = [r for r in regions if r in wanted]
    return {
        "Regions": [
            {"RegionName": r, "Endpoint": f"ec2.{r}.amazonaws.com", "OptInStatus": "opt-in-not-required"}
            for r in regions
        ]
    }


def _zone_id(region: str, index: int) -> str:
    # AWS's zone ids abbreviate the region (use1-az1); the sandbox's only need to be stable and distinct.
    parts = region.split("-")
    return f"{parts[0]}{''.join(p[0] for p in parts[1:-1])}{parts[-1]}-az{index + 1}"


def describe_availability_zones(params: dict[str, Any], region: str) -> dict[str, Any]:
    """EC2 ``DescribeAvailabilityZones`` for ``region`` (the signing region); ``ZoneNames`` narrows it."""
    zones = [
        {
            "ZoneName": f"{region}{letter}",
            "ZoneId": _zone_id(region, index),
            "State": "available",
            "RegionName": region,
            "ZoneType": "availability-zone",
            "OptInStatus": "opt-in-not-required",
            "GroupName": region,
            "NetworkBorderGroup": region,
            "Messages": [],
        }
        for index, letter in enumerate(_ZONE_LETTERS)
    ]
    wanted = _names(params, "ZoneNames")
    if wanted:
        unknown = sorted(set(wanted) - {z["ZoneName"] for z in zones})
        if unknown:
            raise CloudControlError("InvalidParameterValue", f"Invalid availability zone: [{', '.join(unknown)}]")
        zones = [z for z in zones if z["ZoneName"] in wanted]
    return {"AvailabilityZones": zones}


def list_buckets(found: Iterable[tuple[str, str, float | None]]) -> dict[str, Any]:
    """S3 ``ListBuckets`` from ``(name, region, created epoch seconds)`` triples."""
    buckets = [
        {
            "Name": name,
            "CreationDate": datetime.fromtimestamp(created or 0.0, UTC),
            "BucketRegion": region,
        }
        for name, region, created in sorted(found)
    ]
    return {"Buckets": buckets, "Owner": {"DisplayName": SANDBOX_USER, "ID": SANDBOX_ACCOUNT_ID}}

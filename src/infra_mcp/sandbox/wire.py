"""XML wire protocols of the read calls the HTTP sandbox serves beside Cloud Control.

Each AWS service speaks its own protocol, and the AWS CLI (inside the real AWS API MCP server)
parses answers by it: STS the *query* protocol, EC2 the *ec2* protocol, S3 *rest-xml*. A JSON
answer to any of them is "invalid XML received" on the client side, so each gets its own shape here.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

_STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
_EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"
_S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"


def _text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return escape(str(value))


def _fields(values: dict[str, Any], names: dict[str, str]) -> str:
    """``<tag>value</tag>`` for each (answer key -> XML tag) present in ``values``."""
    return "".join(f"<{tag}>{_text(values[key])}</{tag}>" for key, tag in names.items() if key in values)


def request_id() -> str:
    return str(uuid.uuid4())


def sts_answer(operation: str, result: dict[str, Any], rid: str) -> str:
    """A query-protocol success: ``<OpResponse><OpResult>...</OpResult><ResponseMetadata>``."""
    inner = "".join(f"<{key}>{_text(value)}</{key}>" for key, value in result.items())
    return (
        f'<{operation}Response xmlns="{_STS_NS}"><{operation}Result>{inner}</{operation}Result>'
        f"<ResponseMetadata><RequestId>{rid}</RequestId></ResponseMetadata></{operation}Response>"
    )


def sts_error(code: str, message: str, rid: str) -> str:
    return (
        f'<ErrorResponse xmlns="{_STS_NS}"><Error><Type>Sender</Type><Code>{_text(code)}</Code>'
        f"<Message>{_text(message)}</Message></Error><RequestId>{rid}</RequestId></ErrorResponse>"
    )


_REGION_TAGS = {"RegionName": "regionName", "Endpoint": "regionEndpoint", "OptInStatus": "optInStatus"}
_ZONE_TAGS = {
    "ZoneName": "zoneName",
    "ZoneId": "zoneId",
    "State": "zoneState",
    "RegionName": "regionName",
    "ZoneType": "zoneType",
    "OptInStatus": "optInStatus",
    "GroupName": "groupName",
    "NetworkBorderGroup": "networkBorderGroup",
}


def ec2_answer(operation: str, result: dict[str, Any], rid: str) -> str:
    """An ec2-protocol success (lowerCamel tags, lists as ``<item>``) for the operations served."""
    if operation == "DescribeRegions":
        items = "".join(f"<item>{_fields(r, _REGION_TAGS)}</item>" for r in result["Regions"])
        body = f"<regionInfo>{items}</regionInfo>"
    else:
        items = "".join(f"<item>{_fields(z, _ZONE_TAGS)}<messageSet/></item>" for z in result["AvailabilityZones"])
        body = f"<availabilityZoneInfo>{items}</availabilityZoneInfo>"
    return f'<{operation}Response xmlns="{_EC2_NS}"><requestId>{rid}</requestId>{body}</{operation}Response>'


def ec2_error(code: str, message: str, rid: str) -> str:
    return (
        f"<Response><Errors><Error><Code>{_text(code)}</Code><Message>{_text(message)}</Message></Error>"
        f"</Errors><RequestID>{rid}</RequestID></Response>"
    )


def s3_list_buckets(result: dict[str, Any]) -> str:
    owner = result["Owner"]
    buckets = "".join(
        f"<Bucket><Name>{_text(b['Name'])}</Name><CreationDate>{_text(b['CreationDate'])}</CreationDate>"
        f"<BucketRegion>{_text(b['BucketRegion'])}</BucketRegion></Bucket>"
        for b in result["Buckets"]
    )
    return (
        f'<ListAllMyBucketsResult xmlns="{_S3_NS}"><Owner><ID>{_text(owner["ID"])}</ID>'
        f"<DisplayName>{_text(owner['DisplayName'])}</DisplayName></Owner>"
        f"<Buckets>{buckets}</Buckets></ListAllMyBucketsResult>"
    )


def s3_error(code: str, message: str, rid: str) -> str:
    return f"<Error><Code>{_text(code)}</Code><Message>{_text(message)}</Message><RequestId>{rid}</RequestId></Error>"


def list_param(form: dict[str, list[str]], name: str) -> list[str]:
    """A list parameter of the query/ec2 protocols: ``Name.1``, ``Name.2`` ... (or ``Name.member.N``)."""
    found: list[tuple[int, str]] = []
    for key, values in form.items():
        head, _, index = key.rpartition(".")
        head = head.removesuffix(".member")
        if head == name and index.isdigit() and values:
            found.append((int(index), values[0]))
    return [value for _, value in sorted(found)]

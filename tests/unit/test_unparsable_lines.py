"""Reading the id of a JSON-RPC line too deep or too strange for a JSON parser (server/unparsable.py)."""

from __future__ import annotations

import pytest

from infra_mcp.server.unparsable import top_level_fields


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"jsonrpc":"2.0","method":"x","params":{"a":' + "[" * 10_000 + "]" * 10_000 + '},"id":9}', (9, True)),
        ('{"params":{"id":1,"s":"\\"}{["},"id":"abc","method":"m"}', ("abc", True)),
        ('{"id":"\\ud800","method":"m"}', (None, True)),
        ('{"id":true,"method":"m"}', (None, True)),
        ('{"id":5,"result":{}}', (5, False)),
        ('{"id":4,"method":"m","params":{"a":"\\ud800', (4, True)),
        ("not json", (None, False)),
        ("", (None, False)),
    ],
)
def test_the_top_level_id_is_read_without_parsing_nested_values(line: str, expected: tuple[object, bool]) -> None:
    assert top_level_fields(line) == expected

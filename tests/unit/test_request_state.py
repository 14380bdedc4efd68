"""The MCP request state (an elicitation's continuation on protocol 2026-07-28) opens on any replica
that shares the server key, and on no other server."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp.server.request_state import InvalidRequestState

from infra_mcp.server.request_state import ServerKeyCodec


def test_state_sealed_by_one_replica_opens_on_another_with_the_same_server_key(tmp_path: Path) -> None:
    key = tmp_path / "secret.key"
    token = ServerKeyCodec(key).seal(b"approve plan-1")
    assert ServerKeyCodec(key).unseal(token) == b"approve plan-1"


def test_state_sealed_under_another_server_key_is_refused(tmp_path: Path) -> None:
    token = ServerKeyCodec(tmp_path / "one.key").seal(b"approve plan-1")
    with pytest.raises(InvalidRequestState):
        ServerKeyCodec(tmp_path / "other.key").unseal(token)


def test_the_sealed_state_does_not_show_what_it_holds(tmp_path: Path) -> None:
    assert "plan-1" not in ServerKeyCodec(tmp_path / "secret.key").seal(b"approve plan-1")


def test_building_the_codec_does_not_create_the_key_file(tmp_path: Path) -> None:
    ServerKeyCodec(tmp_path / "secret.key")
    assert not (tmp_path / "secret.key").exists()

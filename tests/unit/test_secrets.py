"""SecretSealer: write-only values sealed with a per-installation key, digests for state."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from infra_mcp.errors import ValidationFailed
from infra_mcp.services.secrets import (
    DIGEST_KEY,
    SecretSealer,
    digest_markers,
    digest_of,
    is_sealed,
    is_secret_digest,
    secret_digest,
)


def test_seal_then_unseal_returns_the_value(tmp_path: Path) -> None:
    sealer = SecretSealer(tmp_path / "key")
    marker = sealer.seal({"user": "admin", "password": "hunter2"})
    assert is_sealed(marker)
    assert sealer.unseal(marker) == {"user": "admin", "password": "hunter2"}


def test_the_sealed_marker_holds_no_clear_text(tmp_path: Path) -> None:
    marker = SecretSealer(tmp_path / "key").seal("s3cr3t-P@ssw0rd")
    assert "s3cr3t" not in json.dumps(marker)
    assert marker["sha256"] == secret_digest("s3cr3t-P@ssw0rd")


def test_the_key_file_is_created_owner_only_on_first_use(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "sealing.key"
    sealer = SecretSealer(path)
    assert not path.exists()
    sealer.seal("x")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_bytes()) == 32


def test_a_second_sealer_on_the_same_key_file_unseals(tmp_path: Path) -> None:
    marker = SecretSealer(tmp_path / "key").seal("pw")
    assert SecretSealer(tmp_path / "key").unseal(marker) == "pw"


def test_another_installations_key_cannot_unseal(tmp_path: Path) -> None:
    marker = SecretSealer(tmp_path / "a").seal("pw")
    with pytest.raises(ValidationFailed) as caught:
        SecretSealer(tmp_path / "b").unseal(marker)
    assert caught.value.code == "VALIDATION_001"
    assert caught.value.details["reason"] == "unseal_failed"


def test_an_altered_token_is_refused(tmp_path: Path) -> None:
    sealer = SecretSealer(tmp_path / "key")
    marker = sealer.seal("pw")
    token = marker["__sealed__"]
    altered = {**marker, "__sealed__": token[:-4] + ("AAAA" if token[-4:] != "AAAA" else "BBBB")}
    with pytest.raises(ValidationFailed):
        sealer.unseal(altered)


def test_sealing_the_same_value_twice_gives_different_tokens_and_the_same_digest(tmp_path: Path) -> None:
    sealer = SecretSealer(tmp_path / "key")
    one, two = sealer.seal("pw"), sealer.seal("pw")
    assert one["__sealed__"] != two["__sealed__"]
    assert one["sha256"] == two["sha256"]


def test_unseal_tree_opens_markers_at_any_depth(tmp_path: Path) -> None:
    sealer = SecretSealer(tmp_path / "key")
    tree = {"A": 1, "B": [{"C": sealer.seal("deep")}], "D": sealer.seal(["x"])}
    assert sealer.unseal_tree(tree) == {"A": 1, "B": [{"C": "deep"}], "D": ["x"]}


def test_digest_markers_replace_seals_with_digests_for_state(tmp_path: Path) -> None:
    sealer = SecretSealer(tmp_path / "key")
    tree = {"Engine": "postgres", "MasterUserPassword": sealer.seal("pw"), "L": [sealer.seal(1)]}
    digested = digest_markers(tree)
    assert digested["MasterUserPassword"] == {DIGEST_KEY: secret_digest("pw")}
    assert is_secret_digest(digested["L"][0])
    assert digest_of(digested["MasterUserPassword"]) == digest_of(tree["MasterUserPassword"])
    assert "__sealed__" not in json.dumps(digested)


def test_digest_markers_leave_a_tree_without_secrets_untouched() -> None:
    tree = {"A": {"B": [1, 2]}}
    assert digest_markers(tree) is tree


def test_digests_are_keyed_so_a_stolen_state_file_cannot_be_cracked_offline() -> None:
    import hashlib
    import json

    from infra_mcp.domain.sealed import KEYED_PREFIX, digest_matches, use_digest_key

    plain = hashlib.sha256(json.dumps("hunter2").encode()).hexdigest()
    use_digest_key(b"k" * 32)
    try:
        keyed = secret_digest("hunter2")
        assert keyed.startswith(KEYED_PREFIX)
        assert plain not in keyed
        assert digest_matches("hunter2", keyed)
        assert not digest_matches("hunter3", keyed)
        assert digest_matches("hunter2", plain)  # written before digests were keyed: still recognised
        use_digest_key(b"j" * 32)
        assert not digest_matches("hunter2", keyed)  # another server's key
    finally:
        use_digest_key(None)

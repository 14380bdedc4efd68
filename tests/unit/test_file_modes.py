"""Private file modes (issue 9, item 6): the secret key and the helpers behind the database's modes."""

from __future__ import annotations

import stat
from pathlib import Path

from structlog.testing import capture_logs

from infra_mcp.file_modes import create_private_file, ensure_private_dir, tighten
from infra_mcp.services.secrets import SecretSealer


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_secret_key_is_0600_in_a_0700_folder(tmp_path: Path) -> None:
    key = tmp_path / "data" / "secret.key"
    SecretSealer(key).seal("hunter2")
    assert _mode(key) == 0o600
    assert _mode(key.parent) == 0o700


def test_a_secret_key_readable_by_others_is_tightened_with_a_warning_when_used(tmp_path: Path) -> None:
    key = tmp_path / "secret.key"
    sealed = SecretSealer(key).seal("hunter2")
    key.chmod(0o644)
    with capture_logs() as logs:
        assert SecretSealer(key).unseal(sealed) == "hunter2"
    assert _mode(key) == 0o600
    assert [e["path"] for e in logs if e["event"] == "file_mode_tightened"] == [str(key)]


def test_tightening_only_removes_bits_and_leaves_tight_files_alone(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    ensure_private_dir(folder)
    created = folder / "f"
    create_private_file(created)
    created.chmod(0o400)
    with capture_logs() as logs:
        tighten(created, 0o600)
        tighten(folder, 0o700)
        tighten(folder / "missing", 0o600)
    assert _mode(created) == 0o400  # read-only stays read-only: nothing is ever loosened
    assert _mode(folder) == 0o700
    assert logs == []

"""Private file modes (issue 9, item 6): the helpers behind the data dir's and the database's modes."""

from __future__ import annotations

import stat
from pathlib import Path

from structlog.testing import capture_logs

from infra_mcp.file_modes import create_private_file, ensure_private_dir, tighten


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


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

"""The README's first command runs the demo: it must keep working end to end."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_the_demo_walks_the_whole_loop_and_finishes(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFRA_MCP_")}
    env["COLUMNS"] = "120"
    done = subprocess.run(
        [sys.executable, "-m", "infra_mcp", "demo", "--fast", "--data-dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for milestone in (
        "Approval prompt shown to the human",
        "executed",
        "must be replaced",
        "Roll back",
        "plan.approve",
        "Demo finished",
    ):
        assert milestone in done.stdout, milestone
    # The risk labels real clients show survive the terminal's markup, and execution speaks in the past tense.
    assert re.search(r"\[(low|medium|high)\] (create|replace)", done.stdout), "risk labels dropped"
    assert "replaced web-subnet" in done.stdout

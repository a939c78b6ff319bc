"""Fault injection: hostile input, full disks, damaged stores and killed processes, end to end.

Every test here is marked `faults` (`pytest -m faults` runs just these). Each checks what a user sees:
the exit code, a message naming the thing and the fix, no traceback, and nothing lost or half-done.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.faults)


class Cli:
    """Runs `wsidesk ARGS` in a fresh process with its own data folder."""

    def __init__(self, data: Path) -> None:
        self.data = data

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "WSIDESK_DATA_DIR": str(self.data)}
        return subprocess.run(
            [sys.executable, "-m", "wsidesk", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=timeout,
            check=False,
        )

    @staticmethod
    def fails_cleanly(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
        """Exit `code`, every needle in stderr, and no Python traceback."""
        assert result.returncode == code, (result.returncode, result.stderr[-2000:])
        assert "Traceback" not in result.stderr, result.stderr[-4000:]
        for needle in needles:
            assert needle in result.stderr, (needle, result.stderr[-2000:])


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "data")

"""The version has one source: pyproject's [project] version, read back through the package metadata."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

import wsidesk

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_version_comes_from_the_package_metadata() -> None:
    assert wsidesk.__version__ == version("wsidesk")


def test_installed_version_matches_pyproject() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert wsidesk.__version__ == project["version"], "reinstall (pip install -e .) after changing the version"

"""Where wsidesk keeps its data: one folder with the database and per-profile run folders."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from wsidesk.core.profiles import check_profile_name

DATA_DIR_ENV = "WSIDESK_DATA_DIR"


def default_data_dir() -> Path:
    """`$WSIDESK_DATA_DIR`, else the platform's per-user data folder."""
    if env := os.environ.get(DATA_DIR_ENV):
        return Path(env).expanduser()
    home = Path.home()
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", home / "AppData" / "Local")) / "wsidesk"
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "wsidesk"
    return Path(os.environ.get("XDG_DATA_HOME", home / ".local" / "share")) / "wsidesk"


@dataclass(frozen=True, slots=True)
class DataLayout:
    root: Path

    @property
    def database(self) -> Path:
        return self.root / "wsidesk.sqlite3"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    def profile_dir(self, profile: str) -> Path:
        return self.root / "profiles" / check_profile_name(profile)

    def run_dir(self, profile: str, run_id: str) -> Path:
        return self.profile_dir(profile) / "runs" / run_id

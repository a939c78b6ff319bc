"""Where wsidesk keeps its data: one folder with the database and per-profile run folders."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from wsidesk.core.profiles import check_profile_name

DATA_DIR_ENV = "WSIDESK_DATA_DIR"


def default_data_dir() -> Path:
    """`$WSIDESK_DATA_DIR`, else the platform's per-user data folder.

    Linux: `$XDG_DATA_HOME/wsidesk` (~/.local/share/wsidesk); macOS: ~/Library/Application Support/wsidesk;
    Windows: %LOCALAPPDATA%\\wsidesk.
    """
    if env := os.environ.get(DATA_DIR_ENV):
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("wsidesk", appauthor=False))


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

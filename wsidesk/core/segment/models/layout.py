"""How a model sits on disk (`<root>/<name>/<version>/instanseg.pt`) and how its file is checked."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL_FILE = "instanseg.pt"
DEFAULT_PIXEL_SIZE = 0.5


@dataclass(frozen=True, slots=True)
class KnownModel:
    """A pretrained model wsidesk knows how to install and verify."""

    name: str
    version: str
    sha256: str
    licence: str = "Apache-2.0"
    pixel_size: float = DEFAULT_PIXEL_SIZE


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def safe_sha(path: Path) -> str | None:
    """`sha256_file`, or None when the file cannot be read."""
    try:
        return sha256_file(path)
    except OSError:
        return None


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from `path`, or None when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def version_key(v: str) -> tuple[tuple[int, int | str], ...]:
    # numbers sort numerically (0.10 > 0.2) and before text, so mixed names never fail to compare
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in v.replace("-", ".").split("."))


def pixel_size_from_files(folder: Path) -> float | None:
    """A model's µm/px from the files beside it (model.json, then BioImage.IO's rdf.yaml), else None."""
    meta = read_json(folder / "model.json")
    if meta and isinstance(meta.get("pixel_size"), int | float) and meta["pixel_size"] > 0:
        return float(meta["pixel_size"])
    rdf = folder / "rdf.yaml"
    if rdf.is_file():
        import yaml

        try:
            axes = yaml.safe_load(rdf.read_text(encoding="utf-8"))["inputs"][0]["axes"]
            scales = [float(a["scale"]) for a in axes if a.get("type") == "space" and "scale" in a]
        except (OSError, KeyError, IndexError, TypeError, ValueError, yaml.YAMLError):
            return None  # a malformed rdf says nothing
        if scales and scales[0] > 0:
            return scales[0]
    return None

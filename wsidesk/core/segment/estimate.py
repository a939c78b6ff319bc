"""What the Segment dialog offers and predicts: installed models with their pixel size, and a tile/time estimate.

The time estimate is tiles x a per-tile cost measured once per kind of device (see `TILE_SECONDS`); it is
a rough guide, not a promise: a busy machine or a slide dense with nuclei takes longer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wsidesk.core.segment.models.layout import DEFAULT_PIXEL_SIZE, pixel_size_from_files
from wsidesk.core.segment.models.registry import KNOWN_MODELS, TEST_MODEL, ModelStore

# Seconds per padded 672² tile (512 core + 2 x 80 context) at the model's resolution, end to end.
# Measured on an H&E demo slide: cuda on an H200 (FACTS.md: 138 tiles/s, batch 16); cpu on a 2-core Xeon
# (torch fp32 channels_last backbone 1.3 s + post-processing ~0.5 s; OpenVINO bf16 0.15 s + 0.54 s);
# the bundled test model is small, so its cost is mostly post-processing.
TILE_SECONDS: dict[tuple[str, str], float] = {
    ("cuda", "full"): 1 / 138,
    ("mps", "full"): 0.1,
    ("cpu", "full"): 1.9,
    ("cpu-openvino", "full"): 0.7,
    ("cuda", "test"): 1 / 200,
    ("mps", "test"): 0.05,
    ("cpu", "test"): 0.9,
    ("cpu-openvino", "test"): 0.6,
}
REFERENCE_PIXELS = 672 * 672


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """An installed model as the dialog lists it."""

    name: str
    version: str
    pixel_size: float  # µm/px the model expects
    bundled_test: bool  # the tiny model trained on synthetic slides: not for real slides

    @property
    def label(self) -> str:
        tag = " — bundled test model, synthetic slides only" if self.bundled_test else ""
        return f"{self.name} {self.version} ({self.pixel_size:g} µm/px){tag}"


def model_pixel_size(name: str, path: Path) -> float:
    """A model's µm/px without loading it: its files, then the known table, else 0.5."""
    known = KNOWN_MODELS.get(name)
    return pixel_size_from_files(path.parent) or (known.pixel_size if known else DEFAULT_PIXEL_SIZE)


def installed_models(store: ModelStore) -> list[ModelChoice]:
    """Installed models, pretrained first, the bundled test model last."""
    rows = [info for info in store.list() if info.installed]
    rows.sort(key=lambda info: info.name == TEST_MODEL)
    return [
        ModelChoice(info.name, info.version, model_pixel_size(info.name, info.path), info.name == TEST_MODEL)
        for info in rows
    ]


def seconds_per_tile(*, device: str, backend: str, bundled_test: bool, tile_size: int, padding: int) -> float:
    """Estimated end-to-end seconds for one tile; `device` is cpu, cuda or mps (already resolved)."""
    kind = device.split(":", 1)[0]
    if kind == "cpu" and backend == "openvino":
        kind = "cpu-openvino"
    base = TILE_SECONDS[(kind, "test" if bundled_test else "full")]
    side = tile_size + 2 * padding
    return base * side * side / REFERENCE_PIXELS


def format_duration(seconds: float) -> str:
    """'about 40 s', 'about 3 min', 'about 1.5 h'."""
    if seconds < 90:
        return f"about {max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"

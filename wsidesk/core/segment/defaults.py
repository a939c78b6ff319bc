"""Tile size, padding and batch size that suit a device and inference backend (measured; see the README).

GPUs want big batches to stay busy; on a CPU the model's cost is per pixel, so small batches keep the
post-processing pipelined behind the next tile's backbone and the first cells arrive sooner.
"""

from __future__ import annotations

from dataclasses import dataclass

from wsidesk.core.segment.backends import BACKENDS, openvino_available


@dataclass(frozen=True, slots=True)
class SegmentDefaults:
    """Recommended tiling and batching for one device + backend."""

    tile_size: int
    padding: int
    batch_size: int

    def __post_init__(self) -> None:
        if self.tile_size < 1 or self.padding < 0 or self.batch_size < 1:
            msg = f"bad segment defaults: {self}"
            raise ValueError(msg)


GPU = SegmentDefaults(tile_size=512, padding=80, batch_size=16)
CPU_TORCH = SegmentDefaults(tile_size=512, padding=80, batch_size=2)
CPU_OPENVINO = SegmentDefaults(tile_size=512, padding=80, batch_size=1)
# Every device tiles alike, so a result's cells (and its cache fingerprint) do not depend on where it ran;
# the unpacking fails at import if one ever differs.
(DEFAULT_TILING,) = {(d.tile_size, d.padding) for d in (GPU, CPU_TORCH, CPU_OPENVINO)}


def device_kind(device: str) -> str:
    """'cuda', 'mps' or 'cpu' from a device name such as 'cuda:1' (auto resolves to the available one)."""
    name = device.strip().lower()
    if name == "auto":
        from wsidesk.core.segment.models.load import choose_device

        name = choose_device("auto")
    kind = name.split(":", 1)[0]
    if kind not in ("cpu", "cuda", "mps"):
        msg = f"unknown device {device!r}; use auto, cpu, cuda, cuda:<n> or mps"
        raise ValueError(msg)
    return kind


def recommended_settings(device: str, backend: str = "auto") -> SegmentDefaults:
    """The measured defaults for `device` (auto|cpu|cuda[:n]|mps) and `backend` (auto|torch|openvino)."""
    if backend not in BACKENDS:
        msg = f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}"
        raise ValueError(msg)
    if backend == "openvino":
        return CPU_OPENVINO  # OpenVINO runs on the CPU (or an Intel GPU), whatever torch device is named
    if device_kind(device) != "cpu":
        return GPU  # auto picks torch on CUDA / MPS
    if backend == "torch":
        return CPU_TORCH
    return CPU_OPENVINO if openvino_available() else CPU_TORCH

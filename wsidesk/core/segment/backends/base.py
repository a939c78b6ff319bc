"""What every backbone backend offers, and what the CPU can do natively."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any, Protocol

from wsidesk.core.errors import ModelError

# CPU flags of native bf16 arithmetic: AVX512-BF16 (Cooper Lake, Zen 4+) and AMX (Sapphire Rapids+).
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


class BackendError(ModelError):
    """A backend could not be set up for a model (conversion, cache or runtime); the engine falls back."""


class Backbone(Protocol):
    """The model's backbone: normalised, padded float32 (N, 3, H, W) -> raw outputs (N, C, H, W) float32."""

    name: str  # "torch" or "openvino"
    device: str  # where it runs, e.g. "cpu", "cuda:0", "CPU"

    def native_precisions(self) -> tuple[str, ...]:
        """Reduced precisions that run natively (faster than fp32), best first."""
        ...

    def supports(self, precision: str) -> bool: ...

    def __call__(self, x: Any, precision: str) -> Any: ...


def cpu_flags(path: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU feature flags Linux reports (empty where there is no /proc/cpuinfo)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (Apple silicon's torch CPU path does not gain from it)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    return bool(cpu_flags() & BF16_FLAGS)

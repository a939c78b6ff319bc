"""The model's backbone run by torch (CUDA, MPS or CPU), with autocast for reduced precision."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from wsidesk.core.segment.backends.base import cpu_has_native_bf16


class TorchBackbone:
    """`module.fcn` on the module's device; bf16/fp16 by autocast (bf16 only on a CPU)."""

    name = "torch"

    def __init__(self, module: Any, device: str) -> None:
        self.fcn = module.fcn
        self.device = device
        self._device_type = device.split(":", 1)[0]

    def native_precisions(self) -> tuple[str, ...]:
        """Reduced precisions this device runs faster than fp32, best first."""
        if self._device_type == "cuda":
            import torch

            return ("bf16", "fp16") if torch.cuda.is_bf16_supported() else ("fp16",)
        if self._device_type == "cpu":
            return ("bf16",) if cpu_has_native_bf16() else ()
        return ()

    def supports(self, precision: str) -> bool:
        return (
            precision == "fp32"
            or (precision == "bf16" and self._device_type in ("cpu", "cuda"))
            or (precision == "fp16" and self._device_type == "cuda")
        )

    def __call__(self, x: Any, precision: str) -> Any:
        import torch

        if precision == "fp32":
            autocast: Any = nullcontext()
        else:
            dtype = torch.bfloat16 if precision == "bf16" else torch.float16
            autocast = torch.autocast(device_type=self._device_type, dtype=dtype)
        with torch.inference_mode(), autocast:
            out = self.fcn(x)
        return out.float()

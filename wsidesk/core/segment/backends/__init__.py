"""Inference backends: the model's backbone run by torch or OpenVINO, behind one small interface.

`choose_backbone` never fails a job over a backend: without OpenVINO it says so once (INFO) and uses
torch; a failed conversion or a damaged cache falls back (WARNING with the reason).
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from pathlib import Path
from typing import Any

from wsidesk.core.segment.backends.base import Backbone, BackendError, cpu_flags, cpu_has_native_bf16
from wsidesk.core.segment.backends.postprocess import InstanSegPostprocess, pad_input, splittable

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "openvino")

__all__ = [
    "BACKENDS",
    "Backbone",
    "BackendError",
    "InstanSegPostprocess",
    "choose_backbone",
    "cpu_flags",
    "cpu_has_native_bf16",
    "openvino_available",
    "pad_input",
    "splittable",
]


def openvino_available() -> bool:
    """Whether the `openvino` package is installed (found without importing it)."""
    try:
        return importlib.util.find_spec("openvino") is not None
    except (ImportError, ValueError):
        return False


def choose_backbone(
    module: Any,
    *,
    device: str,
    backend: str = "auto",
    model_path: Path | None = None,
    cache_dir: Path | None = None,
    threads: int | None = None,
) -> Backbone:
    """The backbone to run `module.fcn` with; auto = torch on CUDA/MPS, OpenVINO on a CPU when installed."""
    from wsidesk.core.segment.backends.torch import TorchBackbone

    if backend not in BACKENDS:
        msg = f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}"
        raise ValueError(msg)
    wants_openvino = backend == "openvino" or (backend == "auto" and device == "cpu")
    if not wants_openvino:
        return TorchBackbone(module, device)
    if not openvino_available():
        logger.info("OpenVINO is not installed: the model runs with torch on %s (pip install openvino)", device)
        return TorchBackbone(module, device)
    try:
        return _openvino(module, model_path=model_path, cache_dir=cache_dir, threads=threads)
    except ImportError as exc:
        logger.info("OpenVINO cannot be imported (%s): the model runs with torch on %s", exc, device)
    except BackendError as exc:
        logger.warning("%s: the model runs with torch on %s", exc, device)
    except Exception as exc:  # noqa: BLE001 - any OpenVINO failure falls back: never a failed job
        logger.warning(
            "OpenVINO failed to set up (%s: %s): the model runs with torch on %s", type(exc).__name__, exc, device
        )
    return TorchBackbone(module, device)


def _openvino(module: Any, *, model_path: Path | None, cache_dir: Path | None, threads: int | None) -> Backbone:
    from wsidesk.core.segment.backends.openvino import OpenVINOBackbone, import_openvino

    ov = import_openvino()  # ImportError: the caller falls back with an INFO line
    from wsidesk.core.segment.models.layout import safe_sha

    sha = safe_sha(model_path) if model_path is not None else None
    try:
        # An Intel GPU when OpenVINO sees one (Arc / Iris Xe), else the CPU.
        device = "GPU" if "GPU" in ov.Core().available_devices else "CPU"
    except Exception as exc:
        msg = f"OpenVINO could not list its devices: {exc}"
        raise BackendError(msg) from exc
    key = (sha or id(module), device, threads, str(cache_dir))
    with _PROCESS_LOCK:
        backbone = _PROCESS_BACKBONES.get(key)
        if backbone is None:
            backbone = OpenVINOBackbone(module, model_sha256=sha, cache_dir=cache_dir, device=device, threads=threads)
            _PROCESS_BACKBONES[key] = backbone
            while len(_PROCESS_BACKBONES) > _MAX_BACKBONES:
                _PROCESS_BACKBONES.pop(next(iter(_PROCESS_BACKBONES)))
        return backbone


# One per process, like the loaded models (models/cache.py): the next job on this model reuses the
# converted and compiled backbone instead of converting it again (seconds per job).
_PROCESS_BACKBONES: dict[tuple[Any, ...], Backbone] = {}
_PROCESS_LOCK = threading.Lock()
_MAX_BACKBONES = 2

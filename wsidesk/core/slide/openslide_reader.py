"""SlideReader backed by OpenSlide (Aperio SVS, generic tiled TIFF, NDPI, MRXS, ...)."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from wsidesk.core.errors import SlideError
from wsidesk.core.slide.protocol import best_level_for_downsample

if TYPE_CHECKING:
    from PIL import Image

logger = logging.getLogger(__name__)


def _openslide() -> Any:
    # openslide loads a native library: import it only when a slide is actually opened.
    import openslide

    return openslide


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """Premultiplied RGBA (OpenSlide's output) over white glass -> RGB uint8."""
    rgb = rgba[..., :3].astype(np.uint16)
    rgb += (255 - rgba[..., 3:4]).astype(np.uint16)
    np.minimum(rgb, 255, out=rgb)
    return rgb.astype(np.uint8)


def _mpp_from_properties(props: Any) -> float | None:
    values = []
    for key in ("openslide.mpp-x", "openslide.mpp-y"):
        raw = props.get(key)
        if raw is None:
            continue
        try:
            value = float(raw)
        except (TypeError, ValueError):
            continue
        if math.isfinite(value) and value > 0:
            values.append(value)
    return sum(values) / len(values) if values else None


# What libtiff/OpenSlide say about a well-formed file they cannot decode (vs. corrupt bytes).
_UNSUPPORTED_MARKERS = ("can not handle", "cannot handle", "unsupported", "not supported")


def _unsupported(message: str) -> bool:
    text = message.lower()
    return any(marker in text for marker in _UNSUPPORTED_MARKERS)


class OpenSlideReader:
    """A slide opened with OpenSlide. Reads are thread-safe (OpenSlide handles are)."""

    def __init__(self, path: str | Path, *, mpp: float | None = None) -> None:
        path = Path(path)
        self.path = str(path)
        if mpp is not None and not (math.isfinite(mpp) and mpp > 0):
            msg = f"cannot open slide {path}: µm/px override must be a positive number, got {mpp}"
            raise SlideError(msg)
        if not path.exists():
            msg = f"cannot open slide {path}: no such file"
            raise SlideError(msg)
        if path.is_dir():
            msg = f"cannot open slide {path}: it is a directory, not a slide file"
            raise SlideError(msg)
        openslide = _openslide()
        try:
            slide = openslide.OpenSlide(str(path))
        except openslide.OpenSlideUnsupportedFormatError as exc:
            msg = f"cannot open slide {path}: not a slide format OpenSlide supports"
            raise SlideError(msg) from exc
        except (openslide.OpenSlideError, OSError, ValueError) as exc:
            msg = f"cannot open slide {path}: the file is damaged or unreadable ({exc})"
            raise SlideError(msg) from exc
        self._slide = slide
        self._closed = False
        self._broken: str | None = None
        try:
            props = slide.properties
            self.vendor: str | None = props.get("openslide.vendor")
            self._properties = dict(props)
            self._associated = tuple(slide.associated_images.keys())  # names only; pixels on request
            self._dimensions = tuple(int(v) for v in slide.dimensions)
            self._level_dimensions = tuple((int(w), int(h)) for w, h in slide.level_dimensions)
            self._level_downsamples = tuple(float(d) for d in slide.level_downsamples)
        except openslide.OpenSlideError as exc:
            slide.close()
            msg = f"cannot open slide {path}: the file is damaged or unreadable ({exc})"
            raise SlideError(msg) from exc
        self._mpp = float(mpp) if mpp is not None else _mpp_from_properties(props)
        logger.debug(
            "opened %s: vendor=%s dims=%s levels=%d mpp=%s",
            path,
            self.vendor,
            self._dimensions,
            len(self._level_dimensions),
            self._mpp,
        )

    # -- metadata -------------------------------------------------------------------------------
    @property
    def dimensions(self) -> tuple[int, int]:
        return self._dimensions  # type: ignore[return-value]

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return self._level_dimensions

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        return self._level_downsamples

    @property
    def level_count(self) -> int:
        return len(self._level_dimensions)

    @property
    def mpp(self) -> float | None:
        return self._mpp

    @property
    def properties(self) -> dict[str, str]:
        """OpenSlide's property map (a copy taken at open)."""
        return dict(self._properties)

    @property
    def associated_images(self) -> tuple[str, ...]:
        """Names of the extra images the file holds (e.g. label, macro, thumbnail)."""
        return self._associated

    def read_associated(self, name: str) -> np.ndarray:
        """One associated image as RGB uint8 (composited over white)."""
        what = f"read associated image {name!r}"
        self._check_usable(what)
        if name not in self._associated:
            have = ", ".join(self._associated) or "none"
            msg = f"cannot {what} of slide {self.path}: no such image (it has: {have})"
            raise SlideError(msg)
        openslide = _openslide()
        try:
            image = self._slide.associated_images[name]
        except (openslide.OpenSlideError, OSError, ValueError) as exc:
            msg = f"cannot {what} of slide {self.path}: {exc}"
            raise SlideError(msg) from exc
        return _composite_on_white(np.asarray(image.convert("RGBA")))

    @property
    def closed(self) -> bool:
        return self._closed

    # -- pixels ---------------------------------------------------------------------------------
    def _check_usable(self, what: str) -> None:
        if self._closed:
            msg = f"cannot {what} of slide {self.path}: the slide has been closed"
            raise SlideError(msg)
        if self._broken is not None:
            why = (
                "its image encoding is not supported" if _unsupported(self._broken) else "the file is probably damaged"
            )
            msg = (
                f"cannot {what} of slide {self.path}: an earlier read failed ({self._broken}) and "
                f"OpenSlide cannot read from this handle any more; {why}"
            )
            raise SlideError(msg)

    def _read_rgba(self, what: str, x: int, y: int, level: int, size: tuple[int, int]) -> Image.Image:
        openslide = _openslide()
        try:
            image: Image.Image = self._slide.read_region((x, y), level, size)
        except openslide.OpenSlideError as exc:
            # OpenSlide latches the first error: every later call on this handle fails too.
            self._broken = str(exc)
            if _unsupported(self._broken):
                # A valid file in an encoding OpenSlide cannot decode: not damage, and re-copying won't help.
                msg = (
                    f"cannot {what} of slide {self.path}: {exc} (an unsupported image encoding, e.g. 16/32-bit "
                    "or float samples; convert it to an 8-bit RGB pyramidal TIFF, e.g. "
                    "`vips tiffsave in out.tif --tile --pyramid --compression jpeg`)"
                )
            else:
                msg = (
                    f"cannot {what} of slide {self.path}: {exc} (the file is probably damaged; "
                    "this slide handle can no longer be used)"
                )
            raise SlideError(msg) from exc
        except (ValueError, OSError) as exc:
            msg = f"cannot {what} of slide {self.path}: {exc}"
            raise SlideError(msg) from exc
        return image

    def read_region(self, x: int, y: int, level: int, width: int, height: int) -> np.ndarray:
        what = f"read region x={x} y={y} level={level} {width}x{height}"
        self._check_usable(what)
        if not 0 <= level < len(self._level_dimensions):
            msg = f"cannot {what} of slide {self.path}: level must be in 0..{len(self._level_dimensions) - 1}"
            raise SlideError(msg)
        if width <= 0 or height <= 0:
            msg = f"cannot {what} of slide {self.path}: width and height must be positive"
            raise SlideError(msg)
        image = self._read_rgba(what, int(x), int(y), int(level), (int(width), int(height)))
        return _composite_on_white(np.asarray(image))

    def thumbnail(self, max_size: int) -> np.ndarray:
        what = f"make a {max_size}px thumbnail"
        self._check_usable(what)
        if max_size <= 0:
            msg = f"cannot {what} of slide {self.path}: size must be positive"
            raise SlideError(msg)
        from PIL import Image

        w, h = self._dimensions
        downsample = max(w, h) / max_size
        level = best_level_for_downsample(self, max(downsample, 1.0))
        lw, lh = self._level_dimensions[level]
        rgb = _composite_on_white(np.asarray(self._read_rgba(what, 0, 0, level, (lw, lh))))
        scale = min(1.0, max_size / max(w, h))
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        if (lw, lh) == size:
            return rgb
        image = Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        return np.asarray(image)

    # -- lifetime -------------------------------------------------------------------------------
    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._slide.close()

    def __enter__(self) -> OpenSlideReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"OpenSlideReader({self.path!r}, vendor={self.vendor!r}, dims={self._dimensions})"

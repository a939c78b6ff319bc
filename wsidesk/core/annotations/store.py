"""Annotations kept per slide and per profile: `<data>/profiles/<profile>/annotations/<slide>-<hash>.geojson`.

One QuPath GeoJSON file per slide, replaced atomically and fsynced on every save, so a crash leaves the
previous version or the new one, never a torn file. The file name hashes the slide's canonical path
(two slides both called `a.svs` in different folders do not share regions).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path

from wsidesk.core.annotations.geojson import read_annotations, write_annotations
from wsidesk.core.annotations.model import Annotation

logger = logging.getLogger(__name__)

FOLDER = "annotations"


def slide_key(slide: str | Path) -> str:
    """`<stem>-<16 hex>`: readable, and unique per canonical slide path."""
    canonical = os.path.realpath(os.path.expanduser(str(slide)))
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(canonical).stem)[:48] or "slide"
    return f"{stem}-{digest}"


class AnnotationStore:
    """The annotations of one profile's slides, in its profile folder."""

    def __init__(self, profile_dir: Path) -> None:
        self.folder = Path(profile_dir) / FOLDER

    def path_for(self, slide: str | Path) -> Path:
        return self.folder / f"{slide_key(slide)}.geojson"

    def load(self, slide: str | Path) -> list[Annotation]:
        """The slide's saved annotations ([] when none were saved)."""
        path = self.path_for(slide)
        if not path.exists():
            return []
        return list(read_annotations(path, allow_empty=True).annotations)

    def save(self, slide: str | Path, annotations: Iterable[Annotation]) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        canonical = os.path.realpath(os.path.expanduser(str(slide)))
        return write_annotations(annotations, self.path_for(slide), slide=canonical)

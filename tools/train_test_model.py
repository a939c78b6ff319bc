"""Train the tiny bundled InstanSeg model `wsidesk_test_nuclei` on synthetic demo slides.

The model exists for fast CPU tests and as an offline demo fallback; it only knows the synthetic
H&E of `wsidesk.core.slide.demo` and must never be used silently on real slides.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python tools/train_test_model.py   # ~12 min, 1 CPU thread
    .venv/bin/python tools/train_test_model.py --steps 50 --out /tmp/m   # smoke run

Needs the `[train]` extras beside instanseg-torch: pandas + seaborn (imported by instanseg's loss
module) and `edt` (its l1 seed loss). The exported TorchScript has the same call interface as the
official `instanseg.pt` files (see `wsidesk.core.segment.models`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "resources" / "models" / "wsidesk_test_nuclei" / "0.1.0"

NAME = "wsidesk_test_nuclei"
VERSION = "0.1.0"
PIXEL_SIZE = 0.5
LAYERS = [8, 16, 32, 64]
TRAIN_SEEDS = (101, 102, 103, 104, 105, 106)
EVAL_SEED = 999
SLIDE_SIZE = 2048
CROP = 128
BATCH = 8
WINDOW = 32
LR = 1e-3
CLIP = 20.0


def rasterise(nuclei: np.ndarray, x0: int, y0: int, width: int, height: int) -> np.ndarray:
    """Instance labels (height, width) int32 of the truth ellipses, with the renderer's geometry.

    The demo renderer paints a nucleus where rho <= 1 (alpha >= 0.5), rho measured at pixel
    centres along the ellipse rotated by `angle` from +x towards +y; we use the same formula.
    """
    out = np.zeros((height, width), dtype=np.int32)
    for i, (cx, cy, rx, ry, ang_deg) in enumerate(nuclei[:, :5], start=1):
        r = max(rx, ry) + 1.0
        ax0, ax1 = max(int(cx - r) - x0, 0), min(int(cx + r) + 2 - x0, width)
        ay0, ay1 = max(int(cy - r) - y0, 0), min(int(cy + r) + 2 - y0, height)
        if ax0 >= ax1 or ay0 >= ay1:
            continue
        c, s = math.cos(math.radians(ang_deg)), math.sin(math.radians(ang_deg))
        dx = (np.arange(ax0, ax1) + x0 + 0.5 - cx)[None, :]
        dy = (np.arange(ay0, ay1) + y0 + 0.5 - cy)[:, None]
        rho2 = ((dx * c + dy * s) / rx) ** 2 + ((dy * c - dx * s) / ry) ** 2
        win = out[ay0:ay1, ax0:ax1]
        win[rho2 <= 1.0] = i
    return out


def make_slide(folder: Path, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rgb uint8 HxWx3, labels int32 HxW, tissue centres of nuclei (k, 2)) of one demo slide."""
    from wsidesk.core.slide.demo import load_truth, write_demo_slide
    from wsidesk.core.slide.reader import open_slide

    demo = write_demo_slide(
        folder / f"train_{seed}.svs", width=SLIDE_SIZE, height=SLIDE_SIZE, mpp=PIXEL_SIZE, seed=seed
    )
    reader = open_slide(demo.path)
    try:
        rgb = np.ascontiguousarray(reader.read_region(0, 0, 0, SLIDE_SIZE, SLIDE_SIZE)[..., :3])
    finally:
        reader.close()
    truth = load_truth(demo.path)
    labels = rasterise(truth.nuclei, 0, 0, SLIDE_SIZE, SLIDE_SIZE)
    return rgb, labels, truth.nuclei[:, :2].copy()


def slide_percentiles(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sub = rgb[::4, ::4].reshape(-1, 3).astype(np.float32)
    return np.percentile(sub, 0.1, axis=0), np.percentile(sub, 99.9, axis=0)


def percentile_normalize(rgb: np.ndarray, *, low: float = 0.1, high: float = 99.9, eps: float = 1e-3) -> np.ndarray:
    """(H, W, C) -> float32, each channel scaled by its own low/high percentiles.

    InstanSeg's per-tile scaling (`instanseg.utils.utils.percentile_normalize`), in 0-255 units for `eps`.
    """
    img = np.asarray(rgb, dtype=np.float32)
    lo, hi = np.percentile(img.reshape(-1, img.shape[-1]), [low, high], axis=0)
    return ((img - lo) / np.maximum(hi - lo, eps)).astype(np.float32)


def sample_batch(rng: np.random.Generator, slides: list, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """A batch of (B,3,CROP,CROP) float32 normalised crops and (B,1,CROP,CROP) int64 labels.

    Two crops in three sit on a random nucleus; the rest are uniform over the slide, so pure glass
    and tissue edges are in the mix. One crop in five is normalised with slide-wide percentiles
    rather than its own, so both inference styles are covered.
    """
    xs = np.empty((batch, 3, CROP, CROP), dtype=np.float32)
    ys = np.empty((batch, 1, CROP, CROP), dtype=np.int64)
    for b in range(batch):
        rgb, labels, centres, (lo, hi) = slides[rng.integers(len(slides))]
        if rng.random() < 0.67 and len(centres):
            cx, cy = centres[rng.integers(len(centres))]
            x0 = int(cx) - int(rng.integers(8, CROP - 8))
            y0 = int(cy) - int(rng.integers(8, CROP - 8))
        else:
            x0, y0 = (int(v) for v in rng.integers(0, SLIDE_SIZE - CROP, 2))
        x0 = min(max(x0, 0), SLIDE_SIZE - CROP)
        y0 = min(max(y0, 0), SLIDE_SIZE - CROP)
        img = rgb[y0 : y0 + CROP, x0 : x0 + CROP]
        lab = labels[y0 : y0 + CROP, x0 : x0 + CROP]
        k = int(rng.integers(4))
        img, lab = np.rot90(img, k), np.rot90(lab, k)
        if rng.random() < 0.5:
            img, lab = img[:, ::-1], lab[:, ::-1]
        if rng.random() < 0.2:
            norm = (img.astype(np.float32) - lo) / np.maximum(hi - lo, 1e-3)
        else:
            norm = percentile_normalize(img)
        xs[b] = norm.transpose(2, 0, 1)
        ys[b, 0] = lab
    return xs, ys


def f1_at_05(pred: np.ndarray, truth: np.ndarray) -> tuple[int, int, int]:
    """(tp, fp, fn) matching objects one to one at IoU > 0.5 (such a match is always unique)."""
    n_p, n_t = int(pred.max()), int(truth.max())
    if n_p == 0 or n_t == 0:
        return 0, n_p, n_t
    p = pred.ravel().astype(np.int64)
    t = truth.ravel().astype(np.int64)
    inter = np.bincount(p * (n_t + 1) + t, minlength=(n_p + 1) * (n_t + 1))
    inter = inter.reshape(n_p + 1, n_t + 1)
    area_p = inter.sum(1)
    area_t = inter.sum(0)
    i = inter[1:, 1:]
    union = area_p[1:, None] + area_t[None, 1:] - i
    iou = np.where(union > 0, i / np.maximum(union, 1), 0.0)
    present_p = area_p[1:] > 0
    present_t = area_t[1:] > 0
    tp = int((iou > 0.5).sum())
    return tp, int(present_p.sum()) - tp, int(present_t.sum()) - tp


def evaluate(module, folder: Path, seed: int, tile: int = 256) -> dict[str, object]:
    """F1@0.5 of the exported TorchScript on all tiles of a held-out demo slide.

    Reported for slide-wide normalisation (the headline `f1_at_0.5`) and per-tile normalisation,
    over all tiles and over tiles with nuclei: per-tile scaling stretches the noise of pure-glass
    tiles, where the tiny model then finds false nuclei.
    """
    import torch

    rgb, labels, _centres = make_slide(folder, seed)
    lo, hi = slide_percentiles(rgb)
    t0 = time.perf_counter()
    res: dict[str, object] = {}
    for mode in ("slide", "tile"):
        acc = {"all": [0, 0, 0], "tissue": [0, 0, 0]}
        for y0 in range(0, SLIDE_SIZE, tile):
            for x0 in range(0, SLIDE_SIZE, tile):
                truth = labels[y0 : y0 + tile, x0 : x0 + tile]
                img = rgb[y0 : y0 + tile, x0 : x0 + tile]
                if mode == "tile":
                    norm = percentile_normalize(img)
                else:
                    norm = (img.astype(np.float32) - lo) / np.maximum(hi - lo, 1e-3)
                x = torch.from_numpy(norm.transpose(2, 0, 1).copy())[None]
                with torch.no_grad():
                    out = module(x)[0, 0].numpy().astype(np.int64)
                counts = f1_at_05(out, truth)
                for key in ("all", "tissue") if truth.max() > 0 else ("all",):
                    acc[key] = [u + v for u, v in zip(acc[key], counts, strict=True)]
        for key, (tp, fp, fn) in acc.items():
            res[f"{mode}_norm_{key}_tiles"] = {
                "f1": round(2 * tp / max(2 * tp + fp + fn, 1), 4),
                "tp": tp,
                "fp": fp,
                "fn": fn,
            }
    res["f1_at_0.5"] = res["slide_norm_all_tiles"]["f1"]  # type: ignore[index]
    res["tiles"] = (SLIDE_SIZE // tile) ** 2
    res["tile_size"] = tile
    res["eval_seconds"] = round(time.perf_counter() - t0, 1)
    return res


def build(device: str):
    from instanseg.utils.loss.instanseg_loss import InstanSeg
    from instanseg.utils.model_loader import build_model_from_dict

    method = InstanSeg(
        binary_loss_fn_str="lovasz_hinge",
        seed_loss_fn="l1_distance",
        device=device,
        n_sigma=2,
        cells_and_nuclei=False,
        window_size=WINDOW,
        dim_coords=2,
        dim_seeds=1,
        feature_engineering_function="0",
    )
    spec = {
        "model_str": "InstanSeg_UNet",
        "layers": LAYERS,
        "dim_in": 3,
        "dim_out": method.dim_out,
        "dim_coords": 2,
        "dim_seeds": 1,
        "n_sigma": 2,
        "multihead": False,
        "cells_and_nuclei": False,
        "norm": "BATCH",
        "dropprob": 0.0,
    }
    model = build_model_from_dict(spec, random_seed=0)
    model = method.initialize_pixel_classifier(model, MLP_width=5)
    return model, method


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--steps", type=int, default=900)
    # one thread: on a shared 2-core machine two OpenMP threads were ~4x slower (barrier stalls)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop training early after this long (the steps done are recorded)",
    )
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t_start = time.perf_counter()

    model, method = build("cpu")
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: InstanSeg_UNet layers {LAYERS}, {n_params:,} parameters", flush=True)

    with tempfile.TemporaryDirectory(prefix="wsidesk_train_") as tmp:
        folder = Path(tmp)
        slides = []
        for seed in TRAIN_SEEDS:
            rgb, labels, centres = make_slide(folder, seed)
            slides.append((rgb, labels, centres, slide_percentiles(rgb)))
        ready = time.perf_counter() - t_start
        print(f"data: {len(slides)} demo slides ready in {ready:.0f} s", flush=True)

        optimizer = torch.optim.Adam(model.parameters(), lr=LR)
        # cosine decay to 1% of LR: the last steps polish boundaries instead of jumping around
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.steps, LR * 0.01)
        model.train()
        t_train = time.perf_counter()
        running = 0.0
        steps_done = 0
        for step in range(1, args.steps + 1):
            if args.max_minutes and time.perf_counter() - t_train > 60 * args.max_minutes:
                print(f"time budget reached after {step - 1} steps", flush=True)
                break
            xs, ys = sample_batch(rng, slides, BATCH)
            out = model(torch.from_numpy(xs))
            loss = method.forward(out, torch.from_numpy(ys).clone()).mean()
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
            optimizer.step()
            schedule.step()
            running += float(loss.detach())
            steps_done = step
            if step % 100 == 0:
                el = time.perf_counter() - t_train
                print(f"step {step}/{args.steps} loss {running / 100:.4f} ({el:.0f} s)", flush=True)
                running = 0.0
        train_seconds = time.perf_counter() - t_train

        from instanseg.utils.loss.instanseg_loss import InstanSeg_Torchscript

        model.eval()
        wrapped = InstanSeg_Torchscript(
            model,
            cells_and_nuclei=False,
            pixel_size=PIXEL_SIZE,
            n_sigma=2,
            dim_coords=2,
            dim_seeds=1,
            backbone_dim_in=3,
            feature_engineering_function="0",
        )
        scripted = torch.jit.script(wrapped)
        args.out.mkdir(parents=True, exist_ok=True)
        target = args.out / "instanseg.pt"
        scripted.save(str(target))
        module = torch.jit.load(str(target), map_location="cpu").eval()
        metrics = evaluate(module, folder, EVAL_SEED)

    size = target.stat().st_size
    sha = hashlib.sha256(target.read_bytes()).hexdigest()
    meta = {
        "name": NAME,
        "version": VERSION,
        "licence": "Apache-2.0 (trained by wsidesk)",
        "description": "Tiny InstanSeg nucleus model trained on wsidesk's synthetic H&E demo "
        "slides only; for tests and the offline demo, not for real slides.",
        "pixel_size": PIXEL_SIZE,
        "file": "instanseg.pt",
        "sha256": sha,
        "size_bytes": size,
        "input": "float32 (N,3,H,W) RGB, per-channel percentile 0.1/99.9 normalised",
        "output": "(N,1,H,W) float32 instance labels (0 = background)",
        "architecture": {
            "model": "InstanSeg_UNet",
            "layers": LAYERS,
            "norm": "BATCH",
            "n_sigma": 2,
            "dim_coords": 2,
            "dim_seeds": 1,
            "mlp_width": 5,
            "parameters": n_params,
        },
        "training": {
            "data": f"write_demo_slide {SLIDE_SIZE}x{SLIDE_SIZE} mpp {PIXEL_SIZE} seeds "
            f"{list(TRAIN_SEEDS)}; labels rasterised from the truth ellipses; {CROP}px crops, "
            "2/3 on a nucleus and 1/3 uniform (glass, tissue edges); rot90/flip; 1/5 slide-wide "
            "normalisation",
            "loss": "instanseg InstanSeg loss: lovasz_hinge + l1_distance seed loss",
            "optimizer": f"Adam lr {LR}, cosine decay to {LR * 0.01:g}, grad clip {CLIP}",
            "batch_size": BATCH,
            "crop": CROP,
            "window_size": WINDOW,
            "steps": steps_done,
            "planned_steps": args.steps,
            "seed": args.seed,
            "threads": args.threads,
            "train_seconds": round(train_seconds, 1),
            "total_seconds": round(time.perf_counter() - t_start, 1),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "evaluation": {
            "data": f"held-out demo slide seed {EVAL_SEED}, {SLIDE_SIZE}x{SLIDE_SIZE}, all tiles, "
            "exported TorchScript through the instanseg.pt interface",
            **metrics,
        },
    }
    (args.out / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta["evaluation"], indent=2))
    print(f"saved {target} ({size / 1e6:.2f} MB), train {train_seconds:.0f} s", flush=True)


if __name__ == "__main__":
    main()

"""One tile, one model, every CPU runtime side by side in one process: which one should run the backbone.

Run (OpenVINO from the ``segment`` extra; ONNX Runtime is measured only, it is not a dependency)::

    pip install onnxruntime onnx        # optional, for the ONNX Runtime row
    python benchmarks/bench_runtimes.py                      # CMU-1-Small-Region, 672² tile, 2 threads
    python benchmarks/bench_runtimes.py --tile 512 --threads 4 --repeats 5 --json rt.json

What is measured: one ``--tile``² px tile read at level 0 from the middle of the slide (CMU-1-Small-Region is
0.499 µm/px, the model's 0.5), normalised by its own 0.1/99.9 percentiles, clamped to [-2, 3] as the
module's forward does. Each runtime runs the model's backbone (``module.fcn``) on it: ``--repeats`` timed
calls after one warm-up, median seconds per tile. Each output is compared with torch fp32: mean abs error
of the logits, and cells after the same post-processing (count, and the share matched to torch fp32's cells
at IoU > 0.5). The post-processing (torch, the module's own ``pixel_classifier``) is timed alone on torch
fp32's logits, and the whole TorchScript module (backbone + built-in post-processing) for reference.

Rows: torch fp32 (contiguous and channels_last), torch bf16 autocast + channels_last, OpenVINO fp32 and bf16
(``openvino.convert_model`` of the backbone; bf16 only where the CPU reports it), ONNX Runtime fp32
(``torch.onnx.export`` of the backbone; a failed export is reported with its reason). On a shared machine
absolute seconds move between runs: compare rows of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SLIDE = REPO.parent / "shared" / "data" / "CMU-1-Small-Region.svs"


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """(median seconds of `repeats` calls after one warm-up call, last result)."""
    out = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def read_tile(slide: Path, size: int) -> np.ndarray:
    """uint8 (size, size, 3) at level 0 from the middle of the slide."""
    from wsidesk.core.slide.reader import open_slide

    reader = open_slide(slide)
    try:
        w, h = reader.dimensions
        if w < size or h < size:
            msg = f"{slide} is {w}x{h} px, smaller than a {size}² tile"
            raise SystemExit(msg)
        return reader.read_region((w - size) // 2, (h - size) // 2, 0, size, size)
    finally:
        reader.close()


def cpu_name() -> str:
    """The CPU's model name and whether it does bf16 natively (torch bf16 is emulated, slowly, without)."""
    name = platform.processor() or platform.machine()
    flags: set[str] = set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    native = sorted(flags & {"amx_bf16", "avx512_bf16"})
    return f"{name}, native bf16: {', '.join(native) if native else 'no'}"


def matched_share(ref: np.ndarray, other: np.ndarray) -> float:
    """Share of `ref`'s objects with an IoU > 0.5 partner in `other` (one-to-one at that threshold)."""
    from bench_accuracy import match

    c = match(ref, other)
    return c["tp"] / c["truth"] if c["truth"] else 1.0


# -- runtimes: each returns a callable (no args) that gives float32 logits (1, C, H, W) as numpy --
def torch_runner(fcn: Any, x: Any, *, channels_last: bool, bf16: bool) -> Callable[[], np.ndarray]:
    import torch

    xin = x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()

    def run() -> np.ndarray:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = fcn(xin)
        return out.float().numpy()

    return run


def openvino_runner(fcn: Any, x: Any, *, precision: str, threads: int) -> Callable[[], np.ndarray]:
    from wsidesk.core.segment.backends.openvino import import_openvino

    ov = import_openvino()
    core = ov.Core()
    caps = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    if precision == "bf16" and "BF16" not in caps:
        msg = f"this CPU has no native bf16 (OPTIMIZATION_CAPABILITIES {caps})"
        raise RuntimeError(msg)
    ov_model = ov.convert_model(fcn, example_input=x)
    # OpenVINO picks bf16 by itself on AMX CPUs: say the precision explicitly.
    compiled = core.compile_model(
        ov_model,
        "CPU",
        {
            "INFERENCE_PRECISION_HINT": "f32" if precision == "fp32" else "bf16",
            "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY",
        },
    )
    request = compiled.create_infer_request()
    xin = x.numpy()

    def run() -> np.ndarray:
        request.infer({0: xin})
        return np.asarray(request.get_output_tensor(0).data, dtype=np.float32).copy()

    return run


def onnxruntime_runner(fcn: Any, x: Any, *, threads: int, workdir: Path) -> Callable[[], np.ndarray]:
    import onnxruntime as ort
    import torch

    path = workdir / "backbone.onnx"
    # The backbone is TorchScript: the TorchScript exporter (dynamo=False) is the one that takes it.
    torch.onnx.export(fcn, (x,), str(path), input_names=["x"], output_names=["y"], opset_version=17, dynamo=False)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    xin = x.numpy()

    def run() -> np.ndarray:
        return np.asarray(session.run(None, {"x": xin})[0], dtype=np.float32)

    return run


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915 - one linear measurement script
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--slide", type=Path, default=DEFAULT_SLIDE)
    p.add_argument("--model", default="brightfield_nuclei", help="installed model name or path to instanseg.pt")
    p.add_argument("--models-dir", help="default $WSIDESK_MODEL_DIR or ~/.cache/wsidesk/models")
    p.add_argument("--tile", type=int, default=672, help="tile side in px (a multiple of 16)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", metavar="OUT")
    args = p.parse_args(argv)
    if args.tile % 16:
        p.error("--tile must be a multiple of 16 (the module pads to 16; this bench feeds the backbone directly)")
    if not args.slide.is_file():
        p.error(f"no slide at {args.slide} (see ../shared/data/README.md)")

    from wsidesk.core.segment.backends.postprocess import InstanSegPostprocess
    from wsidesk.core.segment.models import KNOWN_MODELS, ModelStore
    from wsidesk.core.segment.normalise import SlideNormaliser

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    models_dir = Path(
        args.models_dir or os.environ.get("WSIDESK_MODEL_DIR") or Path.home() / ".cache" / "wsidesk" / "models"
    )
    store = ModelStore(models_dir)
    model_path = store.install(args.model) if args.model in KNOWN_MODELS else store.resolve(args.model)
    module = torch.jit.load(str(model_path), map_location="cpu").eval()
    fcn = module.fcn
    post = InstanSegPostprocess(module)

    rgb = read_tile(args.slide, args.tile)
    x = SlideNormaliser.from_image(rgb).to_tensor(rgb[None]).contiguous().clamp(-2, 3)
    print(
        f"model {model_path}, tile {args.tile}² of {args.slide.name}, {args.threads} threads, "
        f"torch {torch.__version__}, median of {args.repeats} after a warm-up"
    )
    print(f"CPU {cpu_name()}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at start (shared CPU)")

    rows: list[dict[str, Any]] = []
    ref_logits: np.ndarray | None = None
    ref_labels: np.ndarray | None = None

    def record(name: str, make: Callable[[], Callable[[], np.ndarray]]) -> None:
        nonlocal ref_logits, ref_labels
        row: dict[str, Any] = {"runtime": name}
        try:
            t0 = time.perf_counter()
            run = make()
            row["setup_s"] = time.perf_counter() - t0
            row["seconds"], logits = timed(run, args.repeats)
        except Exception as exc:  # noqa: BLE001 - a runtime that cannot run this model is a result
            row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
            rows.append(row)
            print(f"  {name}: FAILED {row['error']}", flush=True)
            return
        labels = post(torch.from_numpy(logits), (0, 0))[0]
        if ref_logits is None or ref_labels is None:
            ref_logits, ref_labels = logits, labels
        row["mae"] = float(np.abs(logits - ref_logits).mean())
        row["max_err"] = float(np.abs(logits - ref_logits).max())
        row["cells"] = int(len(np.unique(labels)) - (labels.min() == 0))
        row["matched"] = matched_share(ref_labels, labels)
        rows.append(row)
        print(f"  {name}: {row['seconds']:.3f} s/tile, {row['cells']} cells", flush=True)

    record("torch fp32", lambda: torch_runner(fcn, x, channels_last=False, bf16=False))
    record("torch fp32 channels_last", lambda: torch_runner(fcn, x, channels_last=True, bf16=False))
    record("torch bf16 autocast + channels_last", lambda: torch_runner(fcn, x, channels_last=True, bf16=True))
    record("OpenVINO fp32", lambda: openvino_runner(fcn, x, precision="fp32", threads=args.threads))
    record("OpenVINO bf16", lambda: openvino_runner(fcn, x, precision="bf16", threads=args.threads))
    with tempfile.TemporaryDirectory(prefix="wsidesk-rt-") as tmp:
        record("ONNX Runtime fp32", lambda: onnxruntime_runner(fcn, x, threads=args.threads, workdir=Path(tmp)))

    assert ref_logits is not None and ref_labels is not None
    ref = torch.from_numpy(ref_logits)
    post_s, _ = timed(lambda: post(ref, (0, 0)), args.repeats)
    whole_s, _ = timed(lambda: module(x.clone()), args.repeats)
    n_ref = int(len(np.unique(ref_labels)) - 1)

    head = (
        f"{'runtime':38s} {'s/tile':>7s} {'setup s':>8s} {'MAE logits':>11s} {'max err':>8s} "
        f"{'cells':>6s} {'matched':>8s}"
    )
    print("\n" + head + "\n" + "-" * len(head))
    for r in rows:
        if "error" in r:
            print(f"{r['runtime']:38s} failed: {r['error']}")
            continue
        print(
            f"{r['runtime']:38s} {r['seconds']:7.3f} {r['setup_s']:8.1f} {r['mae']:11.4f} {r['max_err']:8.3f} "
            f"{r['cells']:6d} {100 * r['matched']:7.1f}%"
        )
    print(f"{'post-processing alone (torch)':38s} {post_s:7.3f}   on torch fp32's logits, {n_ref} cells")
    print(f"{'TorchScript module (fcn + post)':38s} {whole_s:7.3f}   torch fp32, contiguous, as InstanSeg calls it")
    print(f"logits std {float(ref_logits.std()):.2f}; matched = share of torch fp32's cells with an IoU > 0.5 partner")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    if args.json:
        out = {"tile": args.tile, "threads": args.threads, "rows": rows, "postprocess_s": post_s, "module_s": whole_s}
        Path(args.json).write_text(json.dumps(out, indent=2), encoding="utf-8")
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

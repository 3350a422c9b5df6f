#!/usr/bin/env bash
# make demo: the whole pipeline on the built-in sample images, CPU only, no network.
#
#   bash scripts/demo.sh [--data X] [--data-root R]          (make demo [DATA=X] [DATA_ROOT=R])
#
# distortions -> trials -> a local study answered by a SIMULATED crowd through the real HIT
# server -> labels -> metric fit -> a short codec training run with that metric -> compress /
# decompress -> the evaluation report. Each stage says what it does; the last line prints the
# report's path. A rerun reuses what is done (distortions, study, metric, training, encodes).
#
# Environment: DEMO_OUT (output folder, default runs/demo), DEMO_FAST=1 (a reduced setting for
# the test suite: two targets, fewer steps, LPIPS-Alex only, no FID), DEMO_THREADS (torch threads,
# default 1: the fastest on a shared CPU), DEMO_TRAIN_STEPS, DEMO_X265_PRESET (default slow),
# DEMO_LEARNED=0 (leave out the learned baselines of checkpoints/*.pt), PY (default .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
PY=${PY:-.venv/bin/python}
OUT=${DEMO_OUT:-runs/demo}
FAST=${DEMO_FAST:-0}
THREADS=${DEMO_THREADS:-1}
PRESET=${DEMO_X265_PRESET:-slow}
export OMP_NUM_THREADS=$THREADS
DATA_ARGS=("$@")
[ ${#DATA_ARGS[@]} -gt 0 ] || DATA_ARGS=(--data samples)
DATA=samples
for ((i = 0; i < ${#DATA_ARGS[@]}; i++)); do
  case "${DATA_ARGS[i]}" in
    --data) DATA=${DATA_ARGS[i + 1]:?--data needs a value} ;;
    --data=*) DATA=${DATA_ARGS[i]#--data=} ;;
  esac
done
if [ "$FAST" = 1 ]; then
  TARGETS=0.15,0.3; TRAIN_STEPS=${DEMO_TRAIN_STEPS:-10}; FIT_ARGS=(--steps 100)
  WORKERS=6; EVAL_ARGS=(--no-fid --lpips alex --crop-images 1)
  EVAL_NOTE="reduced: LPIPS-Alex only, no FID/KID"
else
  TARGETS=0.15,0.3,0.6; TRAIN_STEPS=${DEMO_TRAIN_STEPS:-400}; FIT_ARGS=()
  # LPIPS-VGG costs about 20x LPIPS-Alex on a CPU: the demo leaves it out (python -m
  # codec.evaluate reports it by default), and FID/KID use the plain 256 grid only
  WORKERS=10; EVAL_ARGS=(--lpips alex,squeeze --fid-plain-grid)
  EVAL_NOTE="LPIPS-VGG left out (slow on a CPU), FID/KID on the plain 256x256 grid"
fi
BANNER="Every judgment of this demo's study comes from a simulated crowd \
(python -m mturk.simulate, an MS-SSIM oracle plus noise), not from people; the fitted metric, \
the codec trained with it and these numbers show that the pipeline works, not what people prefer."
mkdir -p "$OUT"
start=$(date +%s)
stage_start=
say() {  # a stage's header, after the time the previous stage took
  local now; now=$(date +%s)
  [ -z "$stage_start" ] || printf '   (%ss)\n' "$(( now - stage_start ))"
  stage_start=$now
  printf '\n== %s\n' "$*"
}
loadavg() { cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo "?"; }

say "0. checks: every stage's command is installed, and every image of the set matches its sha256"
# a missing stage fails the demo here, loudly, before any work: nothing is skipped silently
$PY - <<'PYEOF'
import importlib.util, sys
stages = ["distortions", "mturk.trials", "mturk.serve", "mturk.simulate", "mturk.aggregate",
          "perceptual_metric.fit", "codec.train", "codec.compress", "codec.decompress",
          "codec.evaluate"]
missing = []
for m in stages:
    try:
        if importlib.util.find_spec(m) is None:
            missing.append(m)
    except ImportError:
        missing.append(m)
if missing:
    sys.exit("error: the demo needs " + ", ".join(missing) + " and cannot find it: "
             "is the project installed (make setup) and up to date?")
PYEOF
FIRST_IMAGE=$($PY - "${DATA_ARGS[@]}" <<'PYEOF'
import argparse, sys
from codec.datasets import add_data_args, records_from_args
ap = argparse.ArgumentParser(); add_data_args(ap)
recs = records_from_args(ap.parse_args(sys.argv[1:]))
print(f"{len(recs)} images verified: " + ", ".join(r.id for r in recs), file=sys.stderr)
print(recs[0].path)
PYEOF
)

# the learned baselines: every codec checkpoint in checkpoints/ (none is fine)
LEARNED=
if [ "${DEMO_LEARNED:-1}" = 1 ]; then
  LEARNED=$($PY -c "from distortions.checkpoints import choose_learned
print(','.join(choose_learned(None).codecs))")
fi
CODECS=jpeg,webp,hevc-bpgcfg${LEARNED:+,learned}
say "1. distortions: $CODECS at ${TARGETS} bpp (per image, the best quality whose real file is \
at or under each target); HEVC is x265 with BPG's settings, preset $PRESET"
[ -n "$LEARNED" ] || echo "no learned baselines in this run (none in checkpoints/, or DEMO_LEARNED=0)"
$PY -m distortions "${DATA_ARGS[@]}" --out "$OUT/distortions" --codecs "$CODECS" \
  --targets "$TARGETS" --x265-preset "$PRESET"

say "2. trials: 2AFC pairs (two codecs at the same target, same reference) plus sentinels"
$PY -m mturk.trials --index "$OUT/distortions/index.csv" --out "$OUT/study"

STUDY=$OUT/study
if [ -s "$STUDY/labels.csv" ] && [ "$STUDY/labels.csv" -nt "$STUDY/trials.csv" ]; then
  say "3-5. study: labels.csv is newer than trials.csv; reusing the SIMULATED study in $STUDY"
else
  say "3. study server: python -m mturk.serve --local --simulated (the real HIT server, lab \
study mode, every answer flagged simulated)"
  rm -f "$STUDY"/judgments.sqlite* "$STUDY/participants.txt"   # a fresh study for these trials
  $PY -m mturk.serve --local --simulated --participants "$WORKERS" --port 0 \
    --db "$STUDY/judgments.sqlite" --trials "$STUDY/trials.csv" >"$STUDY/serve.log" 2>&1 &
  SERVER_PID=$!
  trap 'kill "$SERVER_PID" 2>/dev/null || true' EXIT
  URL=$($PY - "$STUDY/serve.log" "$SERVER_PID" <<'PYEOF'
import json, os, re, sys, time, urllib.request
log, pid = sys.argv[1], int(sys.argv[2])
for _ in range(600):
    m = re.search(r"listening on (http://\S+)", open(log).read())
    if m:
        try:
            with urllib.request.urlopen(m.group(1) + "/health", timeout=2) as r:
                if json.load(r).get("ok"):
                    print(m.group(1))
                    sys.exit(0)
        except OSError:
            pass
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(f"the study server exited:\n{open(log).read()}")
    time.sleep(0.1)
sys.exit(f"the study server did not answer /health within 60 s:\n{open(log).read()}")
PYEOF
)
  echo "study server at $URL (participant links in $STUDY/participants.txt; log $STUDY/serve.log)"

  BATCHES=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['n_batches'])" \
    "$STUDY/trials.meta.json")
  say "4. SIMULATED crowd: $WORKERS simulated workers x $BATCHES batches answer over HTTP as the \
HIT page does (MS-SSIM oracle in float32 + noise, one random clicker in ten); flagged simulated in the database"
  $PY -m mturk.simulate --url "$URL" --trials "$STUDY/trials.csv" --workers "$WORKERS" \
    --participants "$STUDY/participants.txt" \
    --batches-per-worker "$BATCHES" --oracle codec.demo:ms_ssim_oracle

  say "5. aggregation: worker quality control (sentinels, time per trial, left/right bias, \
consensus, repeated pairs), then labels.csv (p_b, n per test trial)"
  $PY -m mturk.aggregate --db "$STUDY/judgments.sqlite" --trials "$STUDY/trials.csv" \
    --out "$STUDY"
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  trap - EXIT
fi

say "6. metric: fitting an LPIPS-style metric (AlexNet trunk, linear weights) on the labels"
# (a metric already fitted with this config on these labels is kept: the fit says so)
$PY -m perceptual_metric.fit --labels "$STUDY/labels.csv" --out "$OUT/metric.pt" "${FIT_ARGS[@]}"

say "7. training: a tiny HiFiC-style codec for $TRAIN_STEPS steps (rate + MSE + the fitted \
metric + GAN), 0.15 bpp track"
$PY -m codec.train --model hific --preset tiny --track 0.15 --steps "$TRAIN_STEPS" \
  "${DATA_ARGS[@]}" --val-data "$DATA" --val-images 2 --val-every "$TRAIN_STEPS" \
  --lpips "$OUT/metric.pt" --lr 1e-3 --lr-milestones 0.7 0.9 --workers 0 \
  --threads "$THREADS" --device cpu --out "$OUT/train" --resume
CKPT=$OUT/train/best.pt
[ -s "$CKPT" ] || CKPT=$OUT/train/last.pt

say "8. codec: one image to a real bitstream at or under 0.15 bpp and back"
NAME=$(basename "${FIRST_IMAGE%.*}")
$PY -m codec.compress "$FIRST_IMAGE" "$OUT/codec/$NAME.plic" --model "$CKPT" --target-bpp 0.15 \
  --threads "$THREADS"
$PY -m codec.decompress "$OUT/codec/$NAME.plic" "$OUT/codec/$NAME.png" --model "$CKPT"

say "9. evaluation: our checkpoint and the codecs of step 1 at matched real bitrates (the \
distortions cache is reused): bpp, PSNR, MS-SSIM, LPIPS, the fitted metric, FID/KID \
($EVAL_NOTE)"
$PY -m codec.evaluate --model "$CKPT" --label ours-demo-tiny "${DATA_ARGS[@]}" \
  --classic "jpeg,webp,hevc-bpgcfg${LEARNED:+,learned}" --classic-targets "$TARGETS" \
  --x265-preset "$PRESET" --dist-cache "$OUT/distortions" --metric "$OUT/metric.pt" \
  --simulated "$BANNER" --out "$OUT/eval" "${EVAL_ARGS[@]}"

say "done"
printf 'demo finished in %ss (1-minute load average now %s); report: %s\n' \
  "$(( $(date +%s) - start ))" "$(loadavg)" "$OUT/eval/report.html"

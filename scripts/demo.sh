#!/usr/bin/env bash
# make demo: the whole pipeline on the built-in sample images, CPU only, no network.
#
#   bash scripts/demo.sh [--data X] [--data-root R]          (make demo [DATA=X] [DATA_ROOT=R])
#
# centre crops of the set -> distortions -> trials -> a local study answered by a SIMULATED crowd
# through the real HIT server -> labels -> metric fit -> a short codec training run with that
# metric (beside it, the evaluation measures the codecs of step 1) -> compress / decompress -> the
# evaluation report. Each stage says what it does and how long it took; the end lists the stage
# times, and the last line says where the report is and how to open it. A rerun reuses what is
# done (distortions, study, metric, training, encodes, metric values).
#
# Environment: DEMO_OUT (output folder, default runs/demo), DEMO_CROP (side of the centre crops
# every stage works on, default 256; 0: whole images), DEMO_FAST=1 (a reduced setting for the
# test suite: two targets, fewer steps, no FID), DEMO_THREADS (torch threads, default 1: the
# fastest on a shared CPU), DEMO_TRAIN_STEPS, DEMO_X265_PRESET (default slow), DEMO_LEARNED=0
# (leave out the learned baselines of checkpoints/*.pt), PY (default .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
PY=${PY:-.venv/bin/python}
OUT=${DEMO_OUT:-runs/demo}
FAST=${DEMO_FAST:-0}
THREADS=${DEMO_THREADS:-1}
CROP=${DEMO_CROP:-256}
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
  EVAL_NOTE="reduced: LPIPS-Alex, DISTS and the fitted metric; no FID/KID"
else
  TARGETS=0.15,0.3,0.6; TRAIN_STEPS=${DEMO_TRAIN_STEPS:-400}; FIT_ARGS=()
  # LPIPS-Alex, DISTS (a VGG16) and the fitted metric; python -m codec.evaluate also reports
  # LPIPS-VGG and LPIPS-Squeeze by default (the Keras SqueezeNet lives in ../shared, and the demo
  # gives the same result with or without ../shared); FID/KID on the plain 256 grid
  WORKERS=10; EVAL_ARGS=(--lpips alex --fid-plain-grid)
  EVAL_NOTE="LPIPS-VGG and LPIPS-Squeeze left out, FID/KID on the plain 256x256 grid"
fi
BANNER="Every judgment of this demo's study comes from a simulated crowd \
(python -m mturk.sim.crowd, an MS-SSIM oracle plus noise), not from people; the fitted metric, \
the codec trained with it and these numbers show that the pipeline works, not what people prefer."
mkdir -p "$OUT"
loadavg() { cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo "?"; }
start=$(date +%s)
LOAD_START=$(loadavg)
stage_start=
STAGE_NAMES=()
STAGE_TIMES=()
say() {  # a stage's header, after the time the previous stage took
  local now; now=$(date +%s)
  if [ -n "$stage_start" ]; then
    printf '   (%ss)\n' "$(( now - stage_start ))"
    STAGE_TIMES+=("$(( now - stage_start ))")
  fi
  stage_start=$now
  STAGE_NAMES+=("${1%%:*}")
  printf '\n== %s\n' "$*"
}

say "0. checks: every stage's command is installed, every image of the set matches its \
sha256; the set's centre crops (DEMO_CROP=$CROP px) are what every stage works on"
# a missing stage fails the demo here, loudly, before any work: nothing is skipped silently.
# One Python process does the checks, the crops and the list of learned baselines.
CHECKS=$($PY - "$OUT/images" "$CROP" "${DEMO_LEARNED:-1}" "${DATA_ARGS[@]}" <<'PYEOF'
import argparse, importlib.util, sys
out, crop, learned = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
stages = ["distortions", "mturk.trials", "mturk.serve", "mturk.sim.crowd", "mturk.aggregate",
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
from pathlib import Path
from plic.datasets import add_data_args, crop_set, records_from_args
ap = argparse.ArgumentParser(); add_data_args(ap)
args = ap.parse_args(sys.argv[4:])
recs = records_from_args(args)
print(f"{len(recs)} images verified: " + ", ".join(r.id for r in recs), file=sys.stderr)
data = args.data
if crop > 0:
    name = f"{Path(args.data).stem}-crop{crop}"
    data = str(crop_set(recs, crop, Path(out), name))
    print(f"centre crops of at most {crop}x{crop} px: {data} "
          f"(python -m plic.datasets crop {args.data} --size {crop} --out {out})",
          file=sys.stderr)
    recs = records_from_args(argparse.Namespace(data=data, data_root=None))
codecs, postdecode = "", ""
if learned:  # the learned baselines: every codec checkpoint in checkpoints/ (none is fine)
    from distortions.backends.postdecode import DEFAULT_CHECKPOINT, NAME
    from distortions.checkpoints import choose_learned
    codecs = ",".join(choose_learned(None).codecs)
    if DEFAULT_CHECKPOINT.is_file():  # HEVC's bits + the learned post-decoder (issue 27)
        postdecode = NAME
print(data)
print(recs[0].path)
print(codecs)
print(postdecode)
PYEOF
)
{ read -r DATA_SET; read -r FIRST_IMAGE; read -r LEARNED || true; read -r POSTDECODE || true; } \
  <<< "$CHECKS"
if [ "$CROP" -gt 0 ]; then
  DATA_ARGS=(--data "$DATA_SET")
  DATA=$DATA_SET
fi
CODECS=jpeg,webp,hevc-bpgcfg${POSTDECODE:+,$POSTDECODE}${LEARNED:+,learned}
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
  $PY -m mturk.sim.crowd --url "$URL" --trials "$STUDY/trials.csv" --workers "$WORKERS" \
    --participants "$STUDY/participants.txt" \
    --batches-per-worker "$BATCHES" --oracle plic.quality:ms_ssim_f32

  say "5. aggregation: worker quality control (sentinels, time per trial, left/right bias, \
consensus, repeated pairs), then labels.csv (p_b, n per test trial)"
  $PY -m mturk.aggregate --db "$STUDY/judgments.sqlite" --trials "$STUDY/trials.csv" \
    --out "$STUDY"
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  trap - EXIT
fi

# the requester's dashboard of this study (issue 30): its own secret, readable by this user only
if [ ! -s "$STUDY/dashboard.secret" ]; then
  (umask 077 && $PY -c "import secrets; print(secrets.token_urlsafe(24))" >"$STUDY/dashboard.secret")
fi
DASHBOARD="$PY -m mturk.dashboard --db $STUDY/judgments.sqlite --backend memory --secret-file $STUDY/dashboard.secret"
echo "the requester's dashboard of this study (loopback only; log in with the secret in \
$STUDY/dashboard.secret): $DASHBOARD"

say "6. metric: fitting an LPIPS-style metric (AlexNet trunk, linear weights) on the labels"
# (a metric already fitted with this config on these labels is kept: the fit says so)
$PY -m perceptual_metric.fit --labels "$STUDY/labels.csv" --out "$OUT/metric.pt" "${FIT_ARGS[@]}"

CLASSIC="jpeg,webp,hevc-bpgcfg${LEARNED:+,learned}"
EVAL_COMMON=("${DATA_ARGS[@]}" --classic "$CLASSIC" --classic-targets "$TARGETS"
  --x265-preset "$PRESET" --dist-cache "$OUT/distortions" --metric "$OUT/metric.pt"
  --out "$OUT/eval" --no-progress "${EVAL_ARGS[@]}")
say "7. training: a tiny HiFiC-style codec for $TRAIN_STEPS steps (rate + MSE + the fitted \
metric + GAN), 0.15 bpp track; beside it, on the other core, the evaluation measures the codecs \
of step 1 (python -m codec.evaluate --cache-only; log $OUT/eval-step1.log)"
# independent of the training: its values land in the evaluation's cache, which step 9 reuses
$PY -m codec.evaluate "${EVAL_COMMON[@]}" --cache-only >"$OUT/eval-step1.log" 2>&1 &
EVAL1_PID=$!
EVAL1_START=$(date +%s)
trap 'kill "$EVAL1_PID" 2>/dev/null || true' EXIT
$PY -m codec.train --model hific --preset tiny --track 0.15 --steps "$TRAIN_STEPS" \
  "${DATA_ARGS[@]}" --val-data "$DATA" --val-images 2 --val-every "$TRAIN_STEPS" \
  --lpips "$OUT/metric.pt" --lr 1e-3 --lr-milestones 0.7 0.9 --workers 0 \
  --threads "$THREADS" --device cpu --out "$OUT/train" --resume
CKPT=$OUT/train/best.pt
[ -s "$CKPT" ] || CKPT=$OUT/train/last.pt
TRAIN_END=$(date +%s)
if ! wait "$EVAL1_PID"; then
  cat "$OUT/eval-step1.log" >&2
  echo "error: measuring the codecs of step 1 failed (log above: $OUT/eval-step1.log)" >&2
  exit 1
fi
trap - EXIT
echo "training done; the measurements beside it took $(( $(date +%s) - EVAL1_START ))s and \
ended $(( $(date +%s) - TRAIN_END ))s after it ($(tail -n 1 "$OUT/eval-step1.log"))"

say "8. codec: one image to a real bitstream at or under 0.15 bpp and back"
NAME=$(basename "${FIRST_IMAGE%.*}")
$PY -m codec.compress "$FIRST_IMAGE" "$OUT/codec/$NAME.plic" --model "$CKPT" --target-bpp 0.15 \
  --threads "$THREADS"
$PY -m codec.decompress "$OUT/codec/$NAME.plic" "$OUT/codec/$NAME.png" --model "$CKPT"

say "9. evaluation: our checkpoint and the codecs of step 1 at matched real bitrates (the \
distortions cache and the values measured beside the training are reused): bpp, PSNR, \
MS-SSIM, LPIPS, DISTS, the fitted metric, FID/KID ($EVAL_NOTE)"
$PY -m codec.evaluate --model "$CKPT" --label ours-demo-tiny "${EVAL_COMMON[@]}" \
  --simulated "$BANNER"

say "done"
echo "stage times (1-minute load average at the start $LOAD_START, now $(loadavg)):"
for ((i = 0; i < ${#STAGE_TIMES[@]}; i++)); do
  printf '  %-28s %5ss\n' "${STAGE_NAMES[i]}" "${STAGE_TIMES[i]}"
done
echo "the study's dashboard: $DASHBOARD (then open http://127.0.0.1:8050/)"
REPORT=$(cd "$OUT/eval" && pwd)/report.html
printf 'demo finished in %ss; open the report in a browser: file://%s (report: %s)\n' \
  "$(( $(date +%s) - start ))" "$REPORT" "$OUT/eval/report.html"

#!/usr/bin/env bash
# make bench: every package's benchmark, one after the other; tables land in runs/bench/.
# Each benchmark module is `python -m PKG.bench` and writes runs/bench/PKG.md (+ .json).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mkdir -p runs/bench
for mod in codec.bench codec.context.bench codec.decode_bench distortions.bench perceptual_metric.bench mturk.bench codec.train_bench; do
  file="${mod//.//}.py"
  if [ -f "$file" ]; then
    printf '\n== %s\n' "$mod"
    $PY -m "$mod" "$@"
  fi
done
echo "benchmark tables: runs/bench/"

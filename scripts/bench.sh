#!/usr/bin/env bash
# make bench: every package's benchmark, one after the other; tables land in runs/bench/.
# Each benchmark module is `python -m PKG.bench` and writes runs/bench/PKG.md (+ .json).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mkdir -p runs/bench
# CompressAI, the comparison in codec.bench and codec.decode_bench: --no-deps (see pyproject.toml)
if ! $PY -c "import importlib.util as u, sys; sys.exit(u.find_spec('compressai') is None)"; then
  $PY -m pip install --quiet --no-deps "compressai==1.2.8" \
    || echo "bench: compressai not installed; its comparison rows will say why"
fi
for mod in codec.bench codec.context.bench codec.decode_bench codec.untrusted_bench distortions.bench distortions.cluster_bench perceptual_metric.bench mturk.bench mturk.dashboard.bench codec.train_bench; do
  file="${mod//.//}.py"
  if [ -f "$file" ]; then
    printf '\n== %s\n' "$mod"
    $PY -m "$mod" "$@"
  fi
done
echo "benchmark tables: runs/bench/"

#!/usr/bin/env bash
# make bench: every benchmark, one after the other; tables land in runs/bench/.
# Each is a module of the top-level benchmarks/ package (`python -m benchmarks.NAME --help`);
# options given here go to every one. Not run here: benchmarks.postdecode_time (needs the
# shipped post-decoder), benchmarks.evaluate_commits (two commits) and benchmarks.train_parity
# (hours).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mkdir -p runs/bench
# CompressAI, the comparison in benchmarks.codec_speed and benchmarks.codec_decode: --no-deps
# (see pyproject.toml)
if ! $PY -c "import importlib.util as u, sys; sys.exit(u.find_spec('compressai') is None)"; then
  $PY -m pip install --quiet --no-deps "compressai==1.2.8" \
    || echo "bench: compressai not installed; its comparison rows will say why"
fi
for mod in benchmarks.codec_speed benchmarks.context_model benchmarks.codec_decode \
    benchmarks.untrusted_streams benchmarks.distortions_run benchmarks.cluster_overhead \
    benchmarks.metric_speed benchmarks.study_server benchmarks.dashboard_pages \
    benchmarks.train_speed; do
  printf '\n== %s\n' "$mod"
  $PY -m "$mod" "$@"
done
echo "benchmark tables: runs/bench/"

#!/usr/bin/env bash
# make demo: the whole pipeline on the built-in sample images, CPU only, no network.
# Each stage says what it does; outputs go to runs/demo/. Arguments: --data X [--data-root R].
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${DEMO_OUT:-runs/demo}
DATA_ARGS=("$@")
[ ${#DATA_ARGS[@]} -gt 0 ] || DATA_ARGS=(--data samples)
mkdir -p "$OUT"
say() { printf '\n== %s\n' "$*"; }
start=$(date +%s)

say "1. data: checking every image of the set against its sha256"
$PY - "${DATA_ARGS[@]}" <<'PYEOF'
import argparse, sys
from codec.datasets import add_data_args, records_from_args
ap = argparse.ArgumentParser(); add_data_args(ap)
recs = records_from_args(ap.parse_args(sys.argv[1:]))
print(f"{len(recs)} images verified: " + ", ".join(r.id for r in recs))
PYEOF

say "codec: an untrained tiny model, one sample image to a real bitstream and back"
$PY -m codec.init --preset tiny --out "$OUT/codec/tiny.pt"
$PY -m codec.compress data_manifests/samples/kodim03.png "$OUT/codec/kodim03.plic" \
  --model "$OUT/codec/tiny.pt" --target-bpp 0.5
$PY -m codec.decompress "$OUT/codec/kodim03.plic" "$OUT/codec/kodim03.png"

printf '\ndemo finished in %ss; outputs in %s\n' "$(( $(date +%s) - start ))" "$OUT"

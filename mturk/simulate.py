"""A simulated crowd driving the real server over HTTP: ``python -m mturk.simulate``.

Each simulated worker claims a batch (``POST /api/local/claim``), fetches the task the page would
show (``GET /api/task``), answers every trial and submits (``POST /api/submit``), exactly as the
browser page does (the server must run with ``--local``). Answers come from an oracle plus noise:

- the oracle scores each candidate against the reference: ``ms_ssim``, ``psnr`` or ``mse`` from
  ``codec.quality``, or any ``module:function`` taking ``(ref, img)`` uint8 RGB arrays, named at run
  time (so this package never imports ``perceptual_metric``); ``--lower-is-closer`` for distances;
- a careful worker picks B with probability ``lapse/2 + (1 - lapse) * sigmoid((q_b - q_a) / T)``;
  ``T`` (``--temperature``) defaults to half the median |q_b - q_a| over the test trials;
- a share of workers (``--random-share``) are random clickers (p = 0.5), which sentinel filtering
  should remove.

Every submission is flagged ``simulated`` in the database and every output file says
``"simulated": true``. Worker ids start with ``SIM``.
"""

from __future__ import annotations

import argparse
import http.client
import importlib
import json
import math
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import numpy as np

from codec.fsio import atomic_write_text
from codec.paths import runs_dir
from codec.tables import read_table, resolve_path

from .cli import add_config_args, config_from_args
from .schema import TRIALS_COLUMNS, TRIALS_ID


@dataclass
class SimConfig:
    url: str = field(default="http://127.0.0.1:8000", metadata={"help": "study server (local)"})
    trials: str = field(default=str(runs_dir() / "study" / "trials.csv"),
                        metadata={"help": "trials.csv (the oracle reads its images)"})
    workers: int = field(default=20, metadata={"help": "number of simulated workers"})
    batches_per_worker: int = field(default=1, metadata={"help": "batches each worker does"})
    oracle: str = field(default="ms_ssim", metadata={
        "help": "ms_ssim | psnr | mse | module:function(ref, img) -> score"})
    lower_is_closer: bool = field(default=False, metadata={
        "help": "the oracle is a distance (mse is one already)"})
    temperature: float = field(default=0.0, metadata={
        "help": "decision noise in oracle units; 0 = half the median |q_b - q_a|"})
    lapse: float = field(default=0.05, metadata={"help": "careful workers' share of slips"})
    random_share: float = field(default=0.1, metadata={"help": "share of random clickers"})
    concurrency: int = field(default=4, metadata={"help": "workers answering at once"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    out: str = field(default="", metadata={"help": "summary JSON (default: next to trials)"})


def load_oracle(name: str):
    """``(score_fn, lower_is_closer)`` for a codec.quality name or ``module:function``."""
    if ":" in name:
        mod, fn = name.split(":", 1)
        return getattr(importlib.import_module(mod), fn), False
    from codec import quality

    if name not in ("ms_ssim", "psnr", "mse"):
        raise ValueError(f"unknown oracle {name!r}: ms_ssim, psnr, mse or module:function")
    return getattr(quality, name), name == "mse"


def oracle_scores(trials_csv: str | Path, oracle: str, lower_is_closer: bool = False) -> dict:
    """``{trial_id: (q_a, q_b)}`` with larger = closer to the reference."""
    from codec.image_io import read_image

    fn, lower = load_oracle(oracle)
    sign = -1.0 if (lower or lower_is_closer) else 1.0
    df = read_table(trials_csv, TRIALS_COLUMNS, TRIALS_ID)
    cache: dict[tuple[str, str], float] = {}
    imgs: dict[str, np.ndarray] = {}

    def img(p):
        if p not in imgs:
            imgs[p] = read_image(resolve_path(p, trials_csv))
        return imgs[p]

    def score(ref_p, p):
        if (ref_p, p) not in cache:
            v = float(fn(img(ref_p), img(p)))
            cache[ref_p, p] = sign * (1e3 if math.isinf(v) else v)
        return cache[ref_p, p]

    return {r.trial_id: (score(r.ref_path, r.a_path), score(r.ref_path, r.b_path))
            for r in df.itertuples()}


class Client:
    """One keep-alive HTTP connection with retries (submissions are idempotent, so retry)."""

    def __init__(self, url: str, timeout: float = 10.0, retries: int = 20, backoff: float = 0.2):
        u = urlsplit(url)
        self.host, self.port = u.hostname, u.port or 80
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.conn = None

    def request(self, method: str, path: str, body=None) -> tuple[int, dict]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        for attempt in range(self.retries + 1):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port,
                                                           timeout=self.timeout)
                self.conn.request(method, path, body=data, headers=headers)
                r = self.conn.getresponse()
                raw = r.read()
                try:
                    payload = json.loads(raw) if raw else {}
                except ValueError:
                    payload = {"raw": raw[:200].decode("latin-1")}
                return r.status, payload
            except (OSError, http.client.HTTPException):
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                if attempt == self.retries:
                    raise
                time.sleep(self.backoff * min(2 ** attempt, 10))
        raise AssertionError("unreachable")


def decide(q_a: float, q_b: float, careful: bool, temperature: float, lapse: float,
           rng: np.random.Generator) -> str:
    """``"a"`` or ``"b"`` for one trial."""
    if not careful:
        return "b" if rng.random() < 0.5 else "a"
    z = max(-50.0, min(50.0, (q_b - q_a) / temperature))
    p_b = lapse / 2 + (1 - lapse) / (1 + math.exp(-z))
    return "b" if rng.random() < p_b else "a"


def auto_temperature(scores: dict, test_ids) -> float:
    d = [abs(scores[t][1] - scores[t][0]) for t in test_ids]
    med = float(np.median(d)) if d else 0.0
    return med / 2 if med > 0 else 1e-3


def run_worker(client: Client, worker_id: str, trials_by_id: dict, scores: dict, careful: bool,
               temperature: float, lapse: float, rng: np.random.Generator) -> dict:
    """One worker doing one batch over HTTP; returns what happened (and the latency)."""
    st, claim = client.request("POST", "/api/local/claim", {"worker_id": worker_id})
    if st != 200:
        return dict(status="no_batch", code=st)
    q = urlencode(dict(assignmentId=claim["assignment_id"], hitId=claim["hit_id"],
                       workerId=worker_id))
    st, task = client.request("GET", f"/api/task?{q}")
    if st != 200:
        return dict(status="task_error", code=st)
    answers = []
    for t in task["trials"]:
        row = trials_by_id[t["trial_id"]]
        choice = decide(*scores[t["trial_id"]], careful, temperature, lapse, rng)
        answers.append(dict(trial_id=t["trial_id"], side="left" if choice == row["left"]
                            else "right", rt_ms=int(rng.integers(400, 4000))))
    body = dict(claim, answers=answers, simulated=True)
    t0 = time.perf_counter()
    st, res = client.request("POST", "/api/submit", body)
    latency = time.perf_counter() - t0
    return dict(status=res.get("status", f"http_{st}"), code=st, latency_s=latency,
                assignment_id=claim["assignment_id"], n=len(answers), careful=careful)


def run_crowd(cfg: SimConfig) -> dict:
    df = read_table(cfg.trials, TRIALS_COLUMNS, TRIALS_ID)
    trials_by_id = {r["trial_id"]: r for r in df.to_dict("records")}
    scores = oracle_scores(cfg.trials, cfg.oracle, cfg.lower_is_closer)
    temperature = cfg.temperature or auto_temperature(
        scores, df.loc[df.kind == "test", "trial_id"])
    master = np.random.default_rng(cfg.seed)
    n_random = round(cfg.workers * cfg.random_share)
    careful = [True] * (cfg.workers - n_random) + [False] * n_random
    master.shuffle(careful)
    seeds = master.integers(0, 2**63, size=cfg.workers)
    local = threading.local()
    results: list[dict] = []
    lock = threading.Lock()

    def one(i: int):
        if not hasattr(local, "client"):
            local.client = Client(cfg.url)
        rng = np.random.default_rng(int(seeds[i]))
        wid = f"SIM{cfg.seed:03d}W{i:05d}"
        for _ in range(cfg.batches_per_worker):
            r = run_worker(local.client, wid, trials_by_id, scores, careful[i], temperature,
                           cfg.lapse, rng)
            r["worker_id"] = wid
            with lock:
                results.append(r)
            if r["status"] == "no_batch":
                break

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max(1, cfg.concurrency)) as ex:
        list(ex.map(one, range(cfg.workers)))
    wall = time.perf_counter() - t0
    done = [r for r in results if r["status"] in ("created", "duplicate")]
    summary = dict(simulated=True, config=asdict(cfg), temperature=temperature,
                   workers=cfg.workers, random_clickers=n_random, submissions=len(done),
                   judgments=sum(r["n"] for r in done),
                   failures=[r for r in results if r["status"] not in
                             ("created", "duplicate", "no_batch")][:20],
                   no_batch=sum(r["status"] == "no_batch" for r in results), wall_s=wall,
                   random_worker_ids=sorted(r["worker_id"] for r in done if not r["careful"]))
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mturk.simulate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p, SimConfig)
    cfg = config_from_args(SimConfig, p.parse_args(argv))
    try:
        summary = run_crowd(cfg)
    except (ValueError, OSError, ImportError, AttributeError) as e:
        print(f"mturk.simulate: error: {e}", file=sys.stderr)
        return 2
    out = Path(cfg.out) if cfg.out else Path(cfg.trials).parent / "simulated_crowd.json"
    atomic_write_text(out, json.dumps(summary, indent=2) + "\n")
    print(f"SIMULATED crowd: {summary['submissions']} submissions, {summary['judgments']} "
          f"judgments from {cfg.workers} workers ({summary['random_clickers']} random) "
          f"in {summary['wall_s']:.1f} s; summary {out}")
    return 0 if not summary["failures"] else 1


if __name__ == "__main__":
    sys.exit(main())

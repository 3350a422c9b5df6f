"""A simulated crowd driving the real server over HTTP: ``python -m mturk.simulate``.

Each simulated worker is a lab participant (one link of ``--participants``, the file
``mturk.serve --local --participants N`` writes): it claims a batch (``POST /api/local/claim``
with its token), fetches the task the page would show (``GET /api/task``) and the three images of
every trial, answers, and submits (``POST /api/submit``), exactly as the browser page does. It
knows nothing the page does not show: page trial ids are keyed per assignment, image URLs are
per assignment, so it judges from the pixels it fetched.

Worker types and their shares: ``--mix`` (default ``careful=0.9,random=0.1``; ``mturk.crowd``
describes ``careful``, ``random``, ``always_left``, ``mse_bot`` and ``fast``). Careful workers
score candidates with an oracle: ``ms_ssim``, ``psnr`` or ``mse`` from ``plic.quality``, or any
``module:function`` taking ``(ref, img)`` uint8 RGB arrays, named at run time (so this package
never imports ``perceptual_metric``); ``--lower-is-closer`` for distances. Their noise ``T``
(``--temperature``) defaults to half the median |q_b - q_a| over the test trials of the study.

On an ACR or DSIS study (``mturk.ratings``) the workers rate instead: ``mturk.rate_sim``
documents the oracle-to-scale mapping and the per-worker bias and noise (``--rating-bias-sd``,
``--rating-noise``).

Answers are flagged simulated by the server (``mturk.serve --simulated``), never by this client;
every output file here says ``"simulated": true``. ``summary["worker_types"]`` maps each worker
id to its type (``mturk.crowd_report`` scores the quality control with it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
import threading
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from plic.config_args import add_config_args, config_from_args
from plic.fsio import atomic_write_text
from plic.paths import runs_dir
from plic.tables import read_table, resolve_path

from .crowd import (
    Scorer,
    assign_types,
    choose,
    claim_task,
    crowd_counts,
    load_oracle,
    parse_mix,
    response_ms,
    run_workers,
)
from .http_client import Client
from .rate_sim import run_rating_crowd
from .ratings import RATING_DESIGNS, study_design
from .schema import TRIALS_COLUMNS, TRIALS_ID


@dataclass
class SimConfig:
    url: str = field(default="http://127.0.0.1:8000", metadata={"help": "study server (local)"})
    trials: str = field(default=str(runs_dir() / "study" / "trials.csv"),
                        metadata={"help": "trials.csv (for the noise scale T only)"})
    participants: str = field(default="", metadata={
        "help": "participant links, one per line (default: participants.txt beside --trials)"})
    workers: int = field(default=20, metadata={"help": "number of simulated workers"})
    batches_per_worker: int = field(default=1, metadata={"help": "batches each worker does"})
    mix: str = field(default="careful=0.9,random=0.1", metadata={
        "help": "worker types and shares: careful, random, always_left, mse_bot, fast"})
    oracle: str = field(default="ms_ssim", metadata={
        "help": "ms_ssim | psnr | mse | module:function(ref, img) -> score"})
    lower_is_closer: bool = field(default=False, metadata={
        "help": "the oracle is a distance (mse is one already)"})
    temperature: float = field(default=0.0, metadata={
        "help": "decision noise in oracle units; 0 = half the median |q_b - q_a|"})
    lapse: float = field(default=0.05, metadata={"help": "careful workers' share of slips"})
    concurrency: int = field(default=4, metadata={"help": "workers answering at once"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    out: str = field(default="", metadata={"help": "summary JSON (default: next to trials)"})
    rating_bias_sd: float = field(default=0.5, metadata={
        "help": "acr/dsis studies: sd of careful workers' bias in scale points (mturk.rate_sim)"})
    rating_noise: str = field(default="0.3,0.8", metadata={
        "help": "acr/dsis studies: LO,HI of careful workers' noise sd in scale points"})


def oracle_scores(trials_csv: str | Path, oracle: str, lower_is_closer: bool = False) -> dict:
    """``{trial_id: (q_a, q_b)}`` with larger = closer to the reference (the study's truth
    for the simulation: T's scale here, label accuracy in ``mturk.crowd_report``)."""
    from plic.image_io import read_image

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


def read_participants(path: str | Path) -> list[str]:
    """Participant tokens from a file of links (``...?p=TOKEN``) or bare tokens."""
    out = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line:
            m = re.search(r"[?&]p=([^&\s]+)", line)
            out.append(m.group(1) if m else line)
    return out


def auto_temperature(scores: dict, test_ids) -> float:
    d = [abs(scores[t][1] - scores[t][0]) for t in test_ids]
    med = float(np.median(d)) if d else 0.0
    return med / 2 if med > 0 else 1e-3


def trial_rng(seed: int, hit_id: str, images: list[bytes]) -> np.random.Generator:
    """The worker's random draws for one trial: from (``seed``, the batch's HIT, the shown
    images' bytes), so neither the order in which threads claim batches nor the page's order of
    trials changes an answer: a simulated study is the same on every run."""
    keys = [int(hashlib.sha1(b).hexdigest()[:12], 16) for b in images]
    return np.random.default_rng([seed, zlib.crc32(hit_id.encode()), *keys])


def run_worker(client: Client, token: str, kind: str, scorer: Scorer, temperature: float,
               lapse: float, seed: int, lock: threading.Lock) -> dict:
    """One worker doing one batch over HTTP, as the page would; returns what happened."""
    claim, task = claim_task(client, token)
    if claim is None:
        return task
    answers = []
    for t in task["trials"]:
        pix = {}
        for view in ("ref", "left", "right"):
            st, pix[view] = client.fetch("GET", t[view])
            if st != 200:
                return dict(status="image_error", code=st)
        with lock:                  # one scorer shared by the threads (numpy/torch inside)
            left = scorer.scores(pix["ref"], pix["left"])
            right = scorer.scores(pix["ref"], pix["right"])
        rng = trial_rng(seed, claim["hit_id"], [pix["ref"], pix["left"], pix["right"]])
        answers.append(dict(trial_id=t["trial_id"],
                            side=choose(kind, left, right, temperature, lapse, rng),
                            rt_ms=response_ms(kind, rng)))
    body = dict(assignment_id=claim["assignment_id"], hit_id=claim["hit_id"],
                worker_id=claim["worker_id"], answers=answers)
    t0 = time.perf_counter()
    st, res = client.request("POST", "/api/submit", body)
    latency = time.perf_counter() - t0
    return dict(status=res.get("status", f"http_{st}"), code=st, latency_s=latency,
                assignment_id=claim["assignment_id"], worker_id=claim["worker_id"],
                n=len(answers), kind=kind)


def run_crowd(cfg: SimConfig) -> dict:
    df = read_table(cfg.trials, TRIALS_COLUMNS, TRIALS_ID)
    design = study_design(cfg.trials)
    if design in RATING_DESIGNS:            # ACR/DSIS: simulated raters (mturk.rate_sim)
        tokens = read_participants(cfg.participants or Path(cfg.trials).parent /
                                   "participants.txt")
        if len(tokens) < cfg.workers:
            raise ValueError(f"{cfg.workers} workers need as many participant links; the file "
                             f"has {len(tokens)}")
        return run_rating_crowd(cfg, design, tokens)
    fn, lower = load_oracle(cfg.oracle)
    sign = -1.0 if (lower or cfg.lower_is_closer) else 1.0
    temperature = cfg.temperature
    if not temperature:
        scores = oracle_scores(cfg.trials, cfg.oracle, cfg.lower_is_closer)
        temperature = auto_temperature(scores, df.loc[df.kind == "test", "trial_id"])
    mix = parse_mix(cfg.mix)
    tokens = read_participants(cfg.participants or Path(cfg.trials).parent / "participants.txt")
    if len(tokens) < cfg.workers:
        raise ValueError(f"{cfg.workers} workers need as many participant links; the file has "
                         f"{len(tokens)} (mturk.serve --local --participants {cfg.workers})")
    master = np.random.default_rng(cfg.seed)
    kinds = assign_types(cfg.workers, mix, master)
    seeds = master.integers(0, 2**63, size=cfg.workers)
    scorer, lock = Scorer(fn, sign), threading.Lock()

    def batch(client, i: int) -> dict:
        r = run_worker(client, tokens[i], kinds[i], scorer, temperature, cfg.lapse,
                       int(seeds[i]), lock)
        r.setdefault("kind", kinds[i])
        return r

    results, wall = run_workers(cfg.url, cfg.workers, cfg.batches_per_worker, cfg.concurrency,
                                batch)
    done, counts = crowd_counts(results)
    types = {r["worker_id"]: r["kind"] for r in done}
    summary = dict(simulated=True, config=asdict(cfg), temperature=temperature,
                   workers=cfg.workers, mix=mix,
                   type_counts={k: kinds.count(k) for k in mix},
                   **counts, wall_s=wall,
                   worker_types=types,
                   random_worker_ids=sorted(w for w, k in types.items() if k != "careful"))
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
    mix = ", ".join(f"{n} {k}" for k, n in summary["type_counts"].items())
    print(f"SIMULATED crowd: {summary['submissions']} submissions, {summary['judgments']} "
          f"judgments from {cfg.workers} workers ({mix}) in {summary['wall_s']:.1f} s; "
          f"summary {out}")
    return 0 if not summary["failures"] else 1


if __name__ == "__main__":
    sys.exit(main())

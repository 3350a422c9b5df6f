"""The simulated 2AFC crowd (``mturk.sim.crowd`` on a 2AFC study): each worker claims a batch,
fetches the three images of every trial, picks a side and submits, as the page does.

A worker's choice per type (``choose``; ``mturk.sim.workers`` describes the types): a careful
worker picks right with probability ``lapse/2 + (1 - lapse) * sigmoid((q_right - q_left) / T)``
(``careful_p_right``) on the oracle's scores of the fetched images; the noise ``T`` defaults to
half the median |q_b - q_a| over the study's test trials (``auto_temperature``). Every random
draw of a trial comes from (seed, HIT, the shown images' bytes) (``trial_rng``), so a simulated
study is the same on every run. The rating designs' twin is ``mturk.sim.rating_crowd``.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
import zlib
from dataclasses import asdict
from functools import partial
from pathlib import Path

import numpy as np

from plic.tables import read_table, resolve_path

from ..schema import TRIALS_COLUMNS, TRIALS_ID
from .http_client import Client
from .workers import (
    Scorer,
    assign_types,
    claim_task,
    crowd_counts,
    load_oracle,
    parse_mix,
    read_participants,
    response_ms,
    run_workers,
    shared_scorer,
)


def oracle_scores(trials_csv: str | Path, oracle: str, lower_is_closer: bool = False) -> dict:
    """``{trial_id: (q_a, q_b)}`` with larger = closer to the reference (the study's truth
    for the simulation: T's scale here, label accuracy in ``mturk.sim.twoafc_report``)."""
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


def careful_p_right(q_left: float, q_right: float, temperature: float, lapse: float) -> float:
    """A careful worker's probability of picking right (oracle scores, larger = closer)."""
    z = max(-50.0, min(50.0, (q_right - q_left) / temperature))
    return lapse / 2 + (1 - lapse) / (1 + math.exp(-z))


def choose(kind: str, left: tuple[float, float], right: tuple[float, float], temperature: float,
           lapse: float, rng: np.random.Generator) -> str:
    """``"left"`` or ``"right"`` for one trial; ``left``/``right`` are (score, mse)."""
    if kind == "careful":
        p_right = careful_p_right(left[0], right[0], temperature, lapse)
        return "right" if rng.random() < p_right else "left"
    if kind == "always_left":
        return "left"
    if kind == "mse_bot":
        if left[1] == right[1]:
            return "left" if rng.random() < 0.5 else "right"
        return "left" if left[1] < right[1] else "right"
    return "left" if rng.random() < 0.5 else "right"        # random, fast


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


def twoafc_batch(tokens, kinds, seeds, oracle: str, sign: float, temperature: float,
                 lapse: float, client: Client, i: int) -> dict:
    """Worker ``i``'s next batch (``run_workers``' ``run_batch``, bound with
    ``functools.partial``: it pickles to a cluster's workers; the scorer is per process)."""
    scorer, lock = shared_scorer(oracle, sign)
    r = run_worker(client, tokens[i], kinds[i], scorer, temperature, lapse, seeds[i], lock)
    r.setdefault("kind", kinds[i])
    return r


def run_twoafc_crowd(cfg, df, cluster=None) -> dict:
    """The simulated crowd of ``mturk.sim.crowd`` (its ``SimConfig``) on a 2AFC study whose
    trials table ``df`` is; its workers on ``cluster`` when given (``run_workers``)."""
    _, lower = load_oracle(cfg.oracle)
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
    seeds = [int(v) for v in master.integers(0, 2**63, size=cfg.workers)]
    batch = partial(twoafc_batch, tokens, kinds, seeds, cfg.oracle, sign, temperature, cfg.lapse)
    results, wall = run_workers(cfg.url, cfg.workers, cfg.batches_per_worker, cfg.concurrency,
                                batch, cluster=cluster)
    done, counts = crowd_counts(results)
    types = {r["worker_id"]: r["kind"] for r in done}
    summary = dict(simulated=True, config=asdict(cfg), temperature=temperature,
                   workers=cfg.workers, mix=mix,
                   type_counts={k: kinds.count(k) for k in mix},
                   **counts, wall_s=wall,
                   worker_types=types,
                   random_worker_ids=sorted(w for w, k in types.items() if k != "careful"))
    return summary

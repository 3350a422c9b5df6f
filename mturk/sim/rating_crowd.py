"""Simulated raters for ACR and DSIS studies (``mturk.sim.crowd`` on a rating study).

The documented mapping from the oracle to the 5-point scale: every stimulus gets the oracle's
score ``q`` against its reference (larger = better; ``mturk.sim.workers.load_oracle``), and

    mapped(q) = 1 + 4 / (1 + exp(-(q - q50) / s)),   s = (q90 - q10) / 4

where q10, q50, q90 are the quantiles of ``q`` over the study's distorted stimuli (hidden
references excluded), so the distortions spread over the scale and a hidden reference lands near
5. The same mapping serves ACR (quality) and DSIS (impairment: higher = less impaired).

A careful worker ``w`` has a bias ``b_w ~ N(0, bias_sd)`` and a noise ``sigma_w ~ U(lo, hi)``
drawn once, and rates ``clip(round(mapped + b_w + sigma_w * N(0, 1)), 1, 5)`` (the SUREAL model,
Li & Bampis 2017, discretised). ``random``, ``fast`` and ``mse_bot`` workers are spammers
(uniform scores 1..5); ``always_left`` always gives the first score of the scale (5).

A worker perceives a stimulus's quality without seeing its reference (ACR): the simulation knows
each view's mapped score by the view's bytes (read from ``trials.csv``), and looks up the bytes
the page served; it never uses page ids. ``summary`` records each worker's type, bias and noise
and each stimulus's mapped score, so ``mturk.sim.rating_report`` can score the aggregation.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from dataclasses import asdict
from functools import partial
from pathlib import Path

import numpy as np

from plic.tables import read_table, resolve_path

from ..design.rating import HIDDEN_REF_CODEC, SCALE_MAX, SCALE_MIN
from ..schema import TRIALS_COLUMNS, TRIALS_ID
from .workers import (
    assign_types,
    claim_task,
    crowd_counts,
    load_oracle,
    parse_mix,
    response_ms,
    run_workers,
)

SPAMMER_TYPES = ("random", "fast", "mse_bot")


def parse_noise(spec: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in spec.split(","))
    except ValueError as e:
        raise ValueError(f"--rating-noise {spec!r}: expected LO,HI (e.g. 0.3,0.8)") from e
    if not 0 <= lo <= hi:
        raise ValueError(f"--rating-noise {spec!r}: need 0 <= LO <= HI")
    return lo, hi


def logistic_mapping(q: np.ndarray) -> tuple[float, float]:
    """(q50, s) of ``mapped`` from the distorted stimuli's oracle scores."""
    q10, q50, q90 = np.percentile(q, [10, 50, 90])
    return float(q50), float(max((q90 - q10) / 4, 1e-6))


def mapped(q: float, q50: float, s: float) -> float:
    z = max(-50.0, min(50.0, (q - q50) / s))
    return SCALE_MIN + (SCALE_MAX - SCALE_MIN) / (1 + math.exp(-z))


def stimulus_truth(trials_csv, oracle: str, lower_is_closer: bool = False) -> dict:
    """``{"by_sha": {sha1 of view bytes: mapped}, "by_stimulus": {stimulus id: mapped},
    "q50", "s"}`` for a rating study's ``trials.csv``."""
    from plic.image_io import read_image

    fn, lower = load_oracle(oracle)
    sign = -1.0 if (lower or lower_is_closer) else 1.0
    df = read_table(trials_csv, TRIALS_COLUMNS, TRIALS_ID)
    q: dict[str, float] = {}
    sha: dict[str, str] = {}
    hidden: set[str] = set()
    for r in df.drop_duplicates("a_id").itertuples():
        ref_p, p = resolve_path(r.ref_path, trials_csv), resolve_path(r.a_path, trials_csv)
        v = float(fn(read_image(ref_p), read_image(p)))
        q[r.a_id] = sign * (1e3 if math.isinf(v) else v)
        sha[r.a_id] = hashlib.sha1(Path(p).read_bytes()).hexdigest()
        if r.a_codec == HIDDEN_REF_CODEC:
            hidden.add(r.a_id)
    dist = np.array([v for k, v in q.items() if k not in hidden] or list(q.values()))
    q50, s = logistic_mapping(dist)
    by_stimulus = {k: mapped(v, q50, s) for k, v in q.items()}
    return dict(by_sha={sha[k]: v for k, v in by_stimulus.items()}, by_stimulus=by_stimulus,
                q50=q50, s=s)


def rate(kind: str, true_score: float, bias: float, noise: float,
         rng: np.random.Generator) -> int:
    """One rating on the 5-point scale (see the module docstring)."""
    if kind == "careful":
        x = true_score + bias + noise * rng.standard_normal()
        return int(min(SCALE_MAX, max(SCALE_MIN, round(x))))
    if kind == "always_left":
        return SCALE_MAX
    return int(rng.integers(SCALE_MIN, SCALE_MAX + 1))


def run_rater(client, token: str, kind: str, bias: float, noise: float, by_sha: dict,
              seed: int) -> dict:
    """One worker rating one batch over HTTP, as the page would. The worker's random draws
    for an image come from (``seed``, the batch's HIT, the image's bytes), so neither the
    order in which threads claim batches nor the page's order changes a rating."""
    claim, task = claim_task(client, token)
    if claim is None:
        return task
    hit_key = zlib.crc32(claim["hit_id"].encode())
    answers = []
    for t in task["trials"]:
        for view in ("ref", "img") if "ref" in t else ("img",):
            st, data = client.fetch("GET", t[view])
            if st != 200:
                return dict(status="image_error", code=st)
        sha = hashlib.sha1(data).hexdigest()
        truth = by_sha.get(sha)
        if truth is None:
            return dict(status="unknown_image", code=st)
        rng = np.random.default_rng([seed, hit_key, int(sha[:12], 16)])
        answers.append(dict(trial_id=t["trial_id"], score=rate(kind, truth, bias, noise, rng),
                            rt_ms=response_ms(kind, rng)))
    body = dict(assignment_id=claim["assignment_id"], hit_id=claim["hit_id"],
                worker_id=claim["worker_id"], answers=answers)
    st, res = client.request("POST", "/api/submit", body)
    return dict(status=res.get("status", f"http_{st}"), code=st,
                assignment_id=claim["assignment_id"], worker_id=claim["worker_id"],
                n=len(answers), kind=kind)


def rating_batch(tokens, kinds, biases, noises, by_sha: dict, seeds, client, i: int) -> dict:
    """Rater ``i``'s next batch (``run_workers``' ``run_batch``, bound with
    ``functools.partial`` so that it pickles to a cluster's workers)."""
    r = run_rater(client, tokens[i], kinds[i], biases[i], noises[i], by_sha, seeds[i])
    r.setdefault("kind", kinds[i])
    r["index"] = i
    return r


def run_rating_crowd(cfg, design: str, tokens: list[str], cluster=None) -> dict:
    """The simulated crowd of ``mturk.sim.crowd`` (its ``SimConfig``) on a rating study; its
    raters on ``cluster`` when given (``mturk.sim.workers.run_workers``)."""
    lo, hi = parse_noise(cfg.rating_noise)
    if cfg.rating_bias_sd < 0:
        raise ValueError("--rating-bias-sd must be >= 0")
    truth = stimulus_truth(cfg.trials, cfg.oracle, cfg.lower_is_closer)
    mix = parse_mix(cfg.mix)
    master = np.random.default_rng(cfg.seed)
    kinds = assign_types(cfg.workers, mix, master)
    seeds = master.integers(0, 2**63, size=cfg.workers)
    biases = master.normal(0, cfg.rating_bias_sd, size=cfg.workers)
    noises = master.uniform(lo, hi, size=cfg.workers)

    batch = partial(rating_batch, tokens, kinds, [float(v) for v in biases],
                    [float(v) for v in noises], truth["by_sha"], [int(v) for v in seeds])
    results, wall = run_workers(cfg.url, cfg.workers, cfg.batches_per_worker, cfg.concurrency,
                                batch, cluster=cluster)
    done, counts = crowd_counts(results)
    who = {r["worker_id"]: r["index"] for r in done}
    return dict(simulated=True, design=design, config=asdict(cfg), workers=cfg.workers, mix=mix,
                type_counts={k: kinds.count(k) for k in mix},
                **counts, wall_s=wall,
                worker_types={w: kinds[i] for w, i in who.items()},
                worker_bias={w: float(biases[i]) for w, i in who.items()},
                worker_noise={w: float(noises[i]) for w, i in who.items()},
                mapping=dict(oracle=cfg.oracle, q50=truth["q50"], s=truth["s"]),
                mapped_scores=truth["by_stimulus"],
                random_worker_ids=sorted(w for w, i in who.items() if kinds[i] != "careful"))

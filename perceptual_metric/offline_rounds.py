"""One SIMULATED study in rounds on cached features (no server, no images): the engine of
``perceptual_metric.active_savings``.

Everything a round of the real loop does, without the server and the images (those are the
same code paths as ``mturk.active.acquire`` and ``perceptual_metric.fit``'s ``lin`` mode, on terms
that ``term_cache`` computed once per (reference, distortion)):

- **crowd**: ``workers`` simulated people; a share ``clickers`` answer at random, the others are
  ``mturk.sim.workers`` careful workers on the oracle (LPIPS-VGG distance: larger = farther) with
  their own noise ``T_w = T * exp(worker_noise * N(0, 1))`` (``T``: ``mturk.sim.crowd``'s default,
  half the median oracle gap over the pool's pairs) and ``lapse``. A judgment is one worker drawn at
  random answering one pair. No quality control: clickers' answers all count.
- **truth** of a held-out pair: the crowd's expected share choosing B (``p_true``), so the
  oracle's own 2AFC, ``mean(max(p_true, 1 - p_true))``, is the ceiling.
- **fit** after every round: ``lin`` on the frozen trunk, warm-started from the previous round's
  weights and head (``fit --init``), with ``fit``'s steps, schedule, loss and projection.
- **random**: the training pairs in a seeded order, asked in that order pass after pass (today's
  study: every pair once per pass); **active**: each round ``mturk.active.acquire.pick`` on the
  current metric's ``p_b`` and the labels so far, each picked pair asked ``assignments`` times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from mturk.active.acquire import RoundConfig, pick
from mturk.sim.twoafc_crowd import careful_p_right, choose
from plic.schedule import lr_at

from .fit import FitConfig, lin_batches
from .fit_common import label_weights, rank_loss, total_steps, view_distances, warm_up_head
from .lpips_model import LPIPS, RankHead
from .scoring import ceiling, two_afc

SIM_VERSION = 2  # 2: the first round's fit warms up its fresh head (fit --head-warmup)


@dataclass
class SimStudy:
    """The cached pool: per pair the two terms' rows and the oracle distances."""
    refs: list[str]            # per pair
    ia: np.ndarray             # per pair: row of (ref, a) in ``terms``
    ib: np.ndarray
    terms: torch.Tensor        # (K, sum C) fitted trunk's channel terms
    oracle: np.ndarray         # (K,) oracle distances


@dataclass
class Crowd:
    temperature: np.ndarray    # per worker; nan for a clicker
    lapse: float

    @classmethod
    def draw(cls, n: int, clickers: float, base_t: float, noise: float, lapse: float,
             rng: np.random.Generator) -> Crowd:
        t = base_t * np.exp(noise * rng.standard_normal(n))
        t[rng.permutation(n)[:int(round(clickers * n))]] = np.nan
        return cls(t, lapse)

    def answer(self, d_a: float, d_b: float, rng: np.random.Generator) -> int:
        """One judgment by a random worker: 1 when B is picked."""
        t = self.temperature[rng.integers(len(self.temperature))]
        kind = "random" if math.isnan(t) else "careful"
        left, right = (-d_a, 0.0), (-d_b, 0.0)          # A shown left: larger score = closer
        return int(choose(kind, left, right, float(t), self.lapse, rng) == "right")

    def p_true(self, d_a: np.ndarray, d_b: np.ndarray) -> np.ndarray:
        """Expected share of the crowd picking B, per pair."""
        out = np.zeros(len(d_a))
        for t in self.temperature:
            if math.isnan(t):
                out += 0.5
            else:
                out += [careful_p_right(-x, -y, float(t), self.lapse) for x, y in zip(d_a, d_b)]
        return out / len(self.temperature)


@dataclass
class OfflineRoundsConfig:
    passes: int = 3
    round_judgments: int = 96
    assignments: int = 1
    steps: int | None = None
    weight_cap: int = 0
    acquire: RoundConfig = field(default_factory=lambda: RoundConfig(strategy="active"))


class LinMetric:
    """The fitted metric on cached terms: ``lin`` weights + ranking head, warm between rounds."""

    def __init__(self, net: str, terms: torch.Tensor, seed: int):
        torch.manual_seed(seed)
        self.model = LPIPS.build(net, "lin")
        self.head = RankHead()
        self.terms = terms
        self.fresh = True                   # the head has not been fitted yet

    @torch.no_grad()
    def distances(self, ia: np.ndarray, ib: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = self.model.combine(self.terms).sum(1)
        return d[ia].double().numpy(), d[ib].double().numpy()

    @torch.no_grad()
    def p_b(self, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
        d = self.model.combine(self.terms).sum(1)
        return torch.sigmoid(self.head(d[ia], d[ib])).double().numpy()

    def fit(self, ia, ib, p_b, n, steps: int | None, seed: int, weight_cap: int = 0) -> None:
        """``fit``'s lin loop from the current weights (a fresh optimiser, as ``--init``)."""
        cfg = FitConfig(steps=steps, seed=seed, weight_cap=weight_cap)
        pair_terms = torch.stack([self.terms[ia], self.terms[ib]], 1).unsqueeze(1)
        p_t, n_t = torch.tensor(p_b, dtype=torch.float32), torch.tensor(n, dtype=torch.float32)
        if self.fresh and cfg.head_warmup:  # as fit does without --init
            with torch.no_grad():
                d_a, d_b = view_distances(self.model, pair_terms[:, 0])
            warm_up_head(self.head, d_a, d_b, p_t, label_weights(n_t, cfg.weight_cap),
                         cfg.head_warmup)
        self.fresh = False
        gen = torch.Generator().manual_seed(seed)
        batches = lin_batches(pair_terms, torch.ones(len(ia)), p_t, n_t, cfg.batch_size, gen)
        opt = torch.optim.Adam(list(self.model.lins) + list(self.head.parameters()), lr=cfg.lr,
                               betas=(cfg.beta1, 0.999))
        total = total_steps(cfg, len(ia))
        for step in range(total):
            t, p, w = next(batches)
            for g in opt.param_groups:
                g["lr"] = lr_at(step, total, cfg.lr, decay_fraction=cfg.decay_fraction)
            loss = rank_loss(self.head, *view_distances(self.model, t), p,
                             label_weights(w, cfg.weight_cap))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            self.model.project()


def run(study: SimStudy, train: np.ndarray, held: np.ndarray, crowd: Crowd, strategy: str,
        cfg: OfflineRoundsConfig, seed: int, net: str = "alex", progress=None) -> list[dict]:
    """The learning curve of one strategy: after every round, judgments paid and held-out 2AFC.
    ``train``/``held``: pair indices."""
    rng = np.random.default_rng(seed)
    d_or = study.oracle
    p_true = crowd.p_true(d_or[study.ia[held]], d_or[study.ib[held]])
    metric = LinMetric(net, study.terms, seed)
    k = np.zeros(len(train))
    n = np.zeros(len(train))
    budget = cfg.passes * len(train)
    order = np.tile(rng.permutation(len(train)), cfg.passes)        # random: pass after pass
    refs = [study.refs[i] for i in train]
    curve, paid, rnd = [], 0, 0

    def score():
        d_a, d_b = metric.distances(study.ia[held], study.ib[held])
        return float(two_afc(d_a, d_b, p_true).mean())

    curve.append(dict(round=0, judgments=0, pairs=0, accuracy=score()))
    while paid < budget:
        rnd += 1
        size = min(cfg.round_judgments, budget - paid)
        if strategy == "random":
            asked = list(order[paid:paid + size])
        else:
            q = metric.p_b(study.ia[train], study.ib[train]) if rnd > 1 else np.full(len(train),
                                                                                     0.5)
            p_hat = np.where(n > 0, k / np.maximum(n, 1), 0.5)
            acq = RoundConfig(**{**cfg.acquire.__dict__,
                                 "round_trials": max(1, size // cfg.assignments)})
            draw = int(rng.integers(2**31)) if acq.explore > 0 else None   # explore=0: as before
            asked = [i for i in pick(refs, q, p_hat, n, acq, seed=draw)
                     for _ in range(cfg.assignments)]
            if not asked:                                   # every pair settled: stop paying
                break
        for i in asked:
            p = train[i]
            k[i] += crowd.answer(d_or[study.ia[p]], d_or[study.ib[p]], rng)
            n[i] += 1
        paid += len(asked)
        seen = n > 0
        metric.fit(study.ia[train[seen]], study.ib[train[seen]], k[seen] / n[seen], n[seen],
                   cfg.steps, seed + rnd, cfg.weight_cap)
        curve.append(dict(round=rnd, judgments=paid, pairs=int(seen.sum()), accuracy=score()))
        if progress is not None:
            progress(len(asked))
    return curve


def ceiling_of(study: SimStudy, held: np.ndarray, crowd: Crowd) -> float:
    p = crowd.p_true(study.oracle[study.ia[held]], study.oracle[study.ib[held]])
    return float(ceiling(p).mean())

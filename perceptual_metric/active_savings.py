"""SIMULATED learning curves: how many paid judgments active 2AFC sampling saves.

    python -m perceptual_metric.active_savings --trials runs/budget/pool/trials.csv \\
        --out runs/budget

``--trials`` is a study's pool (``mturk.trials`` with the random strategy: every pair, with the
views the page shows). Per seed, a quarter of the references (``--held-out``) is held out; on the
others a simulated crowd (``offline_rounds``: LPIPS-VGG oracle, per-worker noise, ``--clickers``
random clickers) answers round after round, the metric (``lin`` on AlexNet, warm-started) is
refitted after every round, and its 2AFC on the held-out pairs (against the crowd's expected
answers) is recorded against the judgments paid so far, for both strategies:

- ``random``: today's study, every training pair asked once per pass, ``--passes`` passes: that
  is the full budget B;
- ``active``: ``mturk.active.acquire`` (uncertainty + disagreement, settled pairs skipped, cap per
  reference) up to the same budget.

The saving: per seed, the judgments J after which active's curve reaches random's accuracy at B
and stays at or above it, linearly interpolated between rounds; the ratio J / B with a 95 %
t-interval over seeds. A seed whose active curve never gets there counts as "not reached" (no
ratio). Beside it, because random's full-budget accuracy can be a hair above a curve that has
long stopped moving: the judgments active needs to get 90 % of the way from the unfitted metric
to that accuracy (same rule; no ratio when random's budget bought nothing).
``--noise-floor`` runs random again with other crowds (same held-out split and workers; other
answers, order and fit seeds) and gives its ratio against the first random run: what the
criterion says of a strategy that is random. ``--replicates R`` makes each seed's curve the mean
of R such crowds (an estimate of its expected learning curve); replicate r of seed s runs with
seed ``s + 1000 r``, replicate 0 being the seed's own run.
Outputs: ``OUT/budget.md`` (table, ratio, the command), ``OUT/budget.png``,
``OUT/budget.json``; each (strategy, seed, replicate) run is saved in ``OUT/runs/`` as it
finishes, so an interrupted run resumes where it stopped (same settings). Trunk features and
oracle distances are computed once (``term_cache``: ``OUT/cache/terms.npz``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import stats
from tqdm import tqdm

from mturk.active.acquire import RoundConfig
from mturk.sim.twoafc_crowd import auto_temperature
from plic.cli import command, parser
from plic.config_args import add_config_args, config_from_args, option
from plic.fsio import atomic_write_text
from plic.paths import runs_dir

from .lpips_model import LPIPS
from .offline_rounds import SIM_VERSION, Crowd, OfflineRoundsConfig, SimStudy, ceiling_of, run
from .scoring import two_afc
from .simulate import make_oracle
from .term_cache import compute, test_pairs

STRATEGIES = ("random", "active")


@dataclass
class BudgetConfig:
    trials: str = option(help="the pool: a random-strategy trials.csv (mturk.trials)",
                         factory=lambda: str(runs_dir() / "budget" / "pool" / "trials.csv"))
    out: str = option(help="output folder", factory=lambda: str(runs_dir() / "budget"))
    seeds: int = option(5, "seeds (held-out split, crowd, order)")
    passes: int = option(3, "random's full budget: every training pair asked this many times")
    round_judgments: int = option(96, "judgments per round")
    assignments: int = option(1, "active: judgments per picked pair per round")
    held_out: float = option(0.25, "share of references held out")
    workers: int = option(100, "simulated workers")
    clickers: float = option(0.1, "share of random clickers")
    lapse: float = option(0.05, "careful workers' slips")
    worker_noise: float = option(0.5, "sd of log temperature across careful workers")
    steps: int = option(0, "fit steps per round (0: fit's default)")
    confidence: float = option(0.9, "mturk.active.acquire settled rule")
    max_n: int = option(8, "mturk.active.acquire settled rule")
    rule: str = option("score", "mturk.active.acquire rule: score (u + g) or gain (information on "
                                "the pair's side)")
    prior_judgments: float = option(2.0, "mturk.active.acquire, rule gain: judgments the metric's "
                                         "prediction is worth")
    explore: float = option(0.0, "mturk.active.acquire: share of each active round drawn at "
                                 "random among unsettled pairs")
    weight_cap: int = option(0, "fit: a pair weighs min(n, CAP) judgments in the loss (0: all n)")
    fit_trunk: str = option("alex", "trunk of the fitted lin metric")
    oracle_trunk: str = option("vgg", "trunk of the LPIPS oracle")
    oracle_weights: str = option("v0.1", "v0.1: the oracle is LPIPS as published; sparse: a "
                                         "hidden LPIPS on the same trunk with sparse log-normal "
                                         "channel weights "
                                         "(perceptual_metric.simulate.make_oracle)")
    oracle_seed: int = option(0, "seed of the sparse oracle's weights")
    replicates: int = option(1, "independent crowds per seed (answers, order, fit seeds; same "
                                "held-out split and workers): a seed's curve is their mean, its "
                                "expected learning curve")
    noise_floor: bool = option(False, "also run random again with independent crowds and report "
                                      "its ratio against random: what the criterion gives a "
                                      "strategy no better than random")

    def check(self) -> None:
        if self.seeds < 1 or self.passes < 1 or self.round_judgments < 1 or self.workers < 1:
            raise ValueError("--seeds, --passes, --round-judgments and --workers must be >= 1")
        if not 0 < self.held_out < 1 or not 0 <= self.clickers <= 1:
            raise ValueError("--held-out must be in (0, 1), --clickers in [0, 1]")
        if self.assignments < 1 or self.assignments > self.round_judgments:
            raise ValueError("--assignments must be in [1, --round-judgments]")
        if self.oracle_weights not in ("v0.1", "sparse"):
            raise ValueError(f"--oracle-weights {self.oracle_weights!r}: v0.1 or sparse")
        if self.replicates < 1:
            raise ValueError("--replicates must be >= 1")
        if self.weight_cap < 0:
            raise ValueError("--weight-cap must be >= 0")
        self.acquire().check()

    def acquire(self) -> RoundConfig:
        """The active rounds' ``mturk.active.acquire`` settings."""
        return RoundConfig(strategy="active", confidence=self.confidence, max_n=self.max_n,
                           rule=self.rule, prior_judgments=self.prior_judgments,
                           explore=self.explore)


def load_study(cfg: BudgetConfig) -> tuple[SimStudy, object]:
    sparse = cfg.oracle_weights == "sparse"
    cache = compute(cfg.trials, Path(cfg.out) / "cache", cfg.fit_trunk, cfg.oracle_trunk,
                    need_oracle_terms=sparse)
    oracle = cache["oracle"]
    if sparse:
        with torch.no_grad():
            hidden = make_oracle(cfg.oracle_seed, net=cfg.oracle_trunk)
            oracle = hidden.combine(torch.from_numpy(cache["oracle_terms"])).sum(1).double()
        oracle = oracle.numpy()
    row = {k: i for i, k in enumerate(cache["keys"])}
    df = test_pairs(cfg.trials)
    study = SimStudy(refs=list(df.ref_id),
                     ia=np.array([row[r.ref_path, r.a_path] for r in df.itertuples()]),
                     ib=np.array([row[r.ref_path, r.b_path] for r in df.itertuples()]),
                     terms=torch.from_numpy(cache["terms"]), oracle=oracle)
    return study, df


def split(refs: list[str], share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    names = sorted(set(refs))
    held = set(np.random.default_rng(seed).permutation(names)[:max(1, round(share * len(names)))])
    mask = np.array([r in held for r in refs])
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def crowd_for(study: SimStudy, cfg: BudgetConfig, seed: int) -> Crowd:
    d = study.oracle
    gaps = {i: (-d[a], -d[b]) for i, (a, b) in enumerate(zip(study.ia, study.ib))}
    base_t = auto_temperature(gaps, list(gaps))
    return Crowd.draw(cfg.workers, cfg.clickers, base_t, cfg.worker_noise, cfg.lapse,
                      np.random.default_rng(10_000 + seed))


def reach(curve: list[dict], target: float) -> float:
    """Judgments from which the curve is at or above ``target`` to its end (interpolated);
    nan when its last point is below."""
    j = np.array([c["judgments"] for c in curve], float)
    a = np.array([c["accuracy"] for c in curve], float)
    if a[-1] < target:
        return float("nan")
    below = np.flatnonzero(a < target)
    if not len(below):
        return 0.0
    i = below[-1]                                   # last point below; i + 1 is above
    return float(j[i] + (target - a[i]) / (a[i + 1] - a[i]) * (j[i + 1] - j[i]))


def ratio_ci(ratios: list[float]) -> dict:
    """Per-seed ratios; mean and 95 % t-interval only when every seed reached the target (a
    mean over the seeds that did would flatter active sampling)."""
    r = np.array(ratios, dtype=np.float64)
    out = dict(per_seed=ratios, reached=int((~np.isnan(r)).sum()), seeds=len(ratios))
    if len(r) and not np.isnan(r).any():
        out["mean"] = float(r.mean())
        if len(r) >= 2:
            half = float(stats.t.ppf(0.975, len(r) - 1) * r.std(ddof=1) / np.sqrt(len(r)))
            out["ci95"] = [out["mean"] - half, out["mean"] + half]
    return out


GRID = np.linspace(0, 1, 101)
REPLICATE_STRIDE = 1000  # replicate r of seed s runs with seed s + 1000 r


def mean_curve(curves: list[list[dict]]) -> list[dict]:
    """The pointwise mean of replicate curves on the judgments of the longest one (a curve
    that stopped paying early keeps its last accuracy, as it would)."""
    if len(curves) == 1:
        return curves[0]
    grid = max(curves, key=len)
    acc = np.mean([np.interp([g["judgments"] for g in grid], [c["judgments"] for c in cur],
                             [c["accuracy"] for c in cur]) for cur in curves], 0)
    return [dict(round=g["round"], judgments=g["judgments"], accuracy=float(a))
            for g, a in zip(grid, acc)]


def _on_grid(run: dict, strategy: str) -> np.ndarray:
    """A seed's curve at fractions ``GRID`` of its own budget."""
    return np.interp(GRID * run["budget"], [c["judgments"] for c in run[strategy]],
                     [c["accuracy"] for c in run[strategy]])


def mean_curve_ratio(seeds: list[dict], n_boot: int = 2000, seed: int = 0) -> dict:
    """The same ratio on the seeds' mean curves (budgets as shares), with a percentile bootstrap
    over seeds; a resample whose active curve never gets there counts as not reached."""
    rnd = np.array([_on_grid(s, "random") for s in seeds])
    act = np.array([_on_grid(s, "active") for s in seeds])

    def one(idx):
        curve = [dict(judgments=g, accuracy=a) for g, a in zip(GRID, act[idx].mean(0))]
        return reach(curve, rnd[idx].mean(0)[-1])

    rng = np.random.default_rng(seed)
    boot = np.array([one(rng.integers(0, len(seeds), len(seeds))) for _ in range(n_boot)])
    ok = boot[~np.isnan(boot)]
    out = dict(ratio=one(np.arange(len(seeds))), boot_reached=float(len(ok) / n_boot))
    if len(ok):
        out["ci95"] = [float(np.quantile(ok, 0.025)), float(np.quantile(ok, 0.975))]
    return out


def _key(cfg: BudgetConfig, strategy: str) -> str:
    """The settings a (strategy, seed) run depends on."""
    d = dataclasses.asdict(cfg)
    if strategy == "random":                # the acquisition settings do not touch random
        for k in ("assignments", "confidence", "max_n", "rule", "prior_judgments", "explore"):
            d.pop(k)
    defaults = {f.name: f.default for f in dataclasses.fields(BudgetConfig)}
    for k in ("rule", "prior_judgments", "weight_cap", "explore"):
        if k in d and d[k] == defaults[k]:  # the key of runs made before these options
            d.pop(k)
    d.pop("out")
    d["sim_version"] = SIM_VERSION          # runs made by an older simulation are not reused
    d.pop("seeds")                          # a seed's run does not depend on how many there are
    d.pop("replicates")                     # nor on how many replicates there are
    d.pop("noise_floor")
    if d["oracle_weights"] == "v0.1":       # the key of runs made before the option existed
        d.pop("oracle_weights")
        d.pop("oracle_seed")
    return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]


def experiment(cfg: BudgetConfig, log=print) -> dict:
    cfg.check()
    torch.set_num_threads(1)
    study, _ = load_study(cfg)
    sim = OfflineRoundsConfig(passes=cfg.passes, round_judgments=cfg.round_judgments,
                    assignments=cfg.assignments, steps=cfg.steps or None,
                    weight_cap=cfg.weight_cap, acquire=cfg.acquire())
    runs_dir = Path(cfg.out) / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    v01 = LPIPS.build(cfg.fit_trunk, "lin", linear="v0.1")
    seeds = []
    n_train = [len(split(study.refs, cfg.held_out, s)[0]) for s in range(cfg.seeds)]
    kinds = STRATEGIES + (("twin",) if cfg.noise_floor else ())
    bar = tqdm(total=len(kinds) * cfg.replicates * cfg.passes * sum(n_train),
               desc="simulated judgments", mininterval=2)

    def one_run(strategy, s, r, train, held, crowd):
        """One (strategy, seed, replicate) curve, saved as it finishes; replicate 0 is the
        seed's own crowd (file and key as before replicates existed)."""
        path = runs_dir / (f"{strategy}-s{s}.json" if r == 0 else f"{strategy}-s{s}-r{r}.json")
        key = _key(cfg, strategy)
        if path.is_file() and json.loads(path.read_text()).get("key") == key:
            bar.update(cfg.passes * len(train))
            return json.loads(path.read_text())["curve"]
        curve = run(study, train, held, crowd, strategy, sim, seed=s + REPLICATE_STRIDE * r,
                    net=cfg.fit_trunk, progress=bar.update)
        bar.update(cfg.passes * len(train) - curve[-1]["judgments"])
        atomic_write_text(path, json.dumps(dict(key=key, curve=curve)) + "\n")
        return curve

    for s in range(cfg.seeds):
        train, held = split(study.refs, cfg.held_out, s)
        crowd = crowd_for(study, cfg, s)
        p_true = crowd.p_true(study.oracle[study.ia[held]], study.oracle[study.ib[held]])
        with torch.no_grad():
            d = v01.combine(study.terms).sum(1).double().numpy()
        res = dict(seed=s, train_pairs=len(train), held_pairs=len(held),
                   held_refs=sorted({study.refs[i] for i in held}),
                   ceiling=ceiling_of(study, held, crowd),
                   lpips_v01=float(two_afc(d[study.ia[held]], d[study.ib[held]], p_true).mean()))
        for kind in kinds:
            # the twin: random again, on the replicates after random's own
            strategy, first = ("random", cfg.replicates) if kind == "twin" else (kind, 0)
            curves = [one_run(strategy, s, first + r, train, held, crowd)
                      for r in range(cfg.replicates)]
            res[kind] = mean_curve(curves)
            if cfg.replicates > 1:
                res[f"{kind}_replicates"] = curves
        target = res["random"][-1]["accuracy"]
        res["target"] = target
        res["budget"] = res["random"][-1]["judgments"]
        res["active_reach"] = reach(res["active"], target)
        res["ratio"] = res["active_reach"] / res["budget"]
        start = res["random"][0]["accuracy"]
        part = start + 0.9 * (target - start)
        res["active_reach_90"] = reach(res["active"], part) if target > start else float("nan")
        res["random_reach_90"] = reach(res["random"], part) if target > start else float("nan")
        res["ratio_90"] = res["active_reach_90"] / res["budget"]
        if cfg.noise_floor:
            res["twin_ratio"] = reach(res["twin"], target) / res["budget"]
        seeds.append(res)
        log(f"seed {s}: random {target:.4f} at {res['budget']} judgments; active reaches it "
            f"at {res['active_reach']:.0f} (ratio {res['ratio']:.3f}); ceiling "
            f"{res['ceiling']:.4f}")
    bar.close()
    return dict(simulated=True, config=dataclasses.asdict(cfg), seeds=seeds,
                ratio=ratio_ci([r["ratio"] for r in seeds]),
                ratio_90=ratio_ci([r["ratio_90"] for r in seeds]),
                mean_curves=mean_curve_ratio(seeds),
                **({"twin_ratio": ratio_ci([r["twin_ratio"] for r in seeds])}
                   if cfg.noise_floor else {}))


def table(result: dict) -> str:
    """Mean (sd) held-out 2AFC per share of the budget, both strategies."""
    seeds = result["seeds"]
    budget = seeds[0]["budget"]
    lines = ["| judgments (share of random's budget) | random 2AFC | active 2AFC |",
             "|---|---|---|"]
    for share in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0):
        cells = []
        for strategy in STRATEGIES:
            acc = [np.interp(share * r["budget"], [c["judgments"] for c in r[strategy]],
                             [c["accuracy"] for c in r[strategy]]) for r in seeds]
            cells.append(f"{np.mean(acc):.4f} ({np.std(acc, ddof=1) if len(acc) > 1 else 0:.4f})")
        lines.append(f"| {share * budget:.0f} ({share:.0%}) | {cells[0]} | {cells[1]} |")
    ceil = np.mean([r["ceiling"] for r in seeds])
    v01 = np.mean([r["lpips_v01"] for r in seeds])
    lines += ["", f"Oracle's own 2AFC (the ceiling): {ceil:.4f}; LPIPS-Alex v0.1 (not fitted "
              f"here): {v01:.4f}. Mean (sd) over {len(seeds)} seeds; budgets differ a little "
              f"between seeds (held-out references differ), the first seed's is shown."]
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    """Left: mean curves over seeds (held-out sets differ, so their levels do too); right: the
    paired difference active - random per seed, mean and min-max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds = result["seeds"]
    fig, (ax, dx) = plt.subplots(1, 2, figsize=(10, 4.0))
    x = GRID * np.mean([r["budget"] for r in seeds])
    acc = {k: np.array([_on_grid(r, k) for r in seeds]) for k in STRATEGIES}
    for strategy, color in zip(STRATEGIES, ("tab:blue", "tab:red")):
        ax.plot(x, acc[strategy].mean(0), color=color, label=strategy)
    twin = "twin" in seeds[0]
    if twin:                                 # the noise floor: random with other crowds
        acc["twin"] = np.array([_on_grid(r, "twin") for r in seeds])
        ax.plot(x, acc["twin"].mean(0), color="tab:blue", ls="--", lw=0.8,
                label="random, other crowds")
    ax.axhline(np.mean([r["ceiling"] for r in seeds]), color="k", ls="--",
               label="oracle (ceiling)")
    ax.axhline(np.mean([r["lpips_v01"] for r in seeds]), color="gray", ls=":",
               label="LPIPS-Alex v0.1")
    ax.set_xlabel("paid judgments")
    ax.set_ylabel("held-out 2AFC of the fitted metric")
    ax.set_title(f"SIMULATED: mean of {len(seeds)} seeds", fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    diff = acc["active"] - acc["random"]
    dx.plot(x, diff.mean(0), color="tab:purple", label="mean")
    dx.fill_between(x, diff.min(0), diff.max(0), color="tab:purple", alpha=0.2,
                    label="min-max over seeds")
    if twin:
        dx.plot(x, (acc["twin"] - acc["random"]).mean(0), color="tab:blue", ls="--", lw=0.8,
                label="random (other crowds) - random")
    dx.axhline(0, color="k", lw=0.8)
    dx.set_xlabel("paid judgments")
    dx.set_ylabel("2AFC: active - random (same seed)")
    dx.set_title("SIMULATED: paired difference", fontsize=9)
    dx.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _ratio_text(r: dict) -> str:
    if "ci95" in r:
        text = f"{r['mean']:.3f} (95 % CI {r['ci95'][0]:.3f} to {r['ci95'][1]:.3f})"
    elif "mean" in r:
        text = f"{r['mean']:.3f}"
    else:
        text = f"no single ratio: not reached in {r['seeds'] - r['reached']} of {r['seeds']} seeds"
    per = ", ".join("not reached" if np.isnan(x) else f"{x:.3f}" for x in r["per_seed"])
    return f"**{text}**, reached in {r['reached']} of {r['seeds']} seeds (per seed: {per})"


def _mean_text(m: dict) -> str:
    share = "not reached" if np.isnan(m["ratio"]) else f"{m['ratio']:.3f}"
    ci = (f"bootstrap 95 % interval over seeds {m['ci95'][0]:.3f} to {m['ci95'][1]:.3f} among "
          f"the {m['boot_reached']:.0%} of resamples in which active gets there"
          if "ci95" in m else "no resample gets there")
    return (f"On the seeds' mean curves (budgets as shares of each seed's): active reaches "
            f"random's full-budget accuracy at **{share}** of the budget ({ci}).")


def _twin_text(result: dict) -> str:
    if "twin_ratio" not in result:
        return ""
    return (f"\nThe criterion's noise floor: random sampling again, with independent crowds, "
            f"reaching the first random run's full-budget accuracy: "
            f"{_ratio_text(result['twin_ratio'])}.\n")


def markdown(result: dict, command: str) -> str:
    seeds = result["seeds"]
    random90 = ", ".join("-" if np.isnan(s["random_reach_90"]) else
                         f"{s['random_reach_90'] / s['budget']:.3f}" for s in seeds)
    start = np.mean([s["random"][0]["accuracy"] for s in seeds])
    end = {k: np.mean([np.interp(s["budget"], [c["judgments"] for c in s[k]],
                                 [c["accuracy"] for c in s[k]]) for s in seeds])
           for k in STRATEGIES}
    gain = (f"What the labels buy: the unfitted metric (uniform weights) scores {start:.4f}; "
            f"after random's full budget {end['random']:.4f} ({end['random'] - start:+.4f}), "
            f"after the same number of actively chosen judgments {end['active']:.4f} "
            f"({end['active'] - start:+.4f}).")
    c = result["config"]
    oracle = f"LPIPS-{c['oracle_trunk']} ({c['oracle_weights']} weights)"
    reps = c.get("replicates", 1)
    each = (f"; each seed's curve is the mean of {reps} independent crowds" if reps > 1 else "")
    return (f"SIMULATED study ({oracle} oracle crowd, lin {c['fit_trunk']} metric{each}), made "
            f"by\n\n"
            f"    {command}\n\n{table(result)}\n\nJudgments active sampling needs to reach "
            f"random sampling's full-budget accuracy, as a share of that budget: "
            f"{_ratio_text(result['ratio'])}.\n\nTo get 90 % of the way there from the unfitted "
            f"metric: active {_ratio_text(result['ratio_90'])}; random itself needs "
            f"{random90} of its budget for that.\n\n{_mean_text(result['mean_curves'])}\n\n"
            f"{gain}\n{_twin_text(result)}")


PROG = "python -m perceptual_metric.active_savings"


@command(PROG, errors=(KeyError,))
def main(argv: list[str] | None = None) -> int:
    p = parser(PROG, __doc__)
    add_config_args(p, BudgetConfig)
    cfg = config_from_args(BudgetConfig, p.parse_args(argv))
    command_line = PROG + " " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    result = experiment(cfg)
    out = Path(cfg.out)
    plot(result, out / "budget.png")
    md = markdown(result, command_line.strip())
    atomic_write_text(out / "budget.md", md)
    atomic_write_text(out / "budget.json",
                      json.dumps(dict(result, command=command_line), indent=2) + "\n")
    print(md, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""2AFC trials from ``index.csv``: ``python -m mturk.trials --index IDX --out runs/study``.

A test trial shows a reference and two distortions of that same reference (same crop) made for the
same ``target_bpp`` by different codecs or settings; every such pair is asked once (pairs whose
decoded images are identical are skipped). ``a``/``b`` and the side shown on the left are drawn at
random and recorded. A sentinel trial has an obvious answer: one side is the reference itself, the
other the most degraded distortion of that reference (lowest MS-SSIM, else lowest PSNR, else
lowest bpp); ``expected`` names the reference's side. Each batch (one HIT) holds ``batch_size``
trials of which ``round(batch_size * sentinel_share)`` (at least one when the share is > 0) are
sentinels, shuffled among the tests. Everything is drawn from one seeded generator, so the same
index and config give the same ``trials.csv``; a second run with nothing changed does nothing.

Outputs: ``OUT/trials.csv`` (``mturk.schema.TRIALS_COLUMNS``, paths relative to OUT) and
``OUT/trials.meta.json`` (index hash, config, counts).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from codec.fsio import atomic_write_text, sha256_file
from codec.paths import runs_dir
from codec.tables import read_table, rel_path, resolve_path, write_table
from distortions.schema import INDEX_COLUMNS, INDEX_ID

from .cli import add_config_args, config_from_args
from .schema import TRIALS_COLUMNS, TRIALS_ID

REFERENCE_CODEC = "reference"


@dataclass
class TrialsConfig:
    batch_size: int = field(default=20, metadata={"help": "trials per batch (one HIT)"})
    sentinel_share: float = field(default=0.1, metadata={
        "help": "share of each batch that is sentinel trials with an obvious answer"})
    seed: int = field(default=0, metadata={"help": "seed of every random choice"})
    max_pairs_per_group: int = field(default=0, metadata={
        "help": "at most this many pairs per (reference, target_bpp); 0 = all pairs"})

    def check(self) -> None:
        if self.batch_size < 2:
            raise ValueError("batch_size must be >= 2")
        if not 0 <= self.sentinel_share < 1:
            raise ValueError("sentinel_share must be in [0, 1)")
        if self.max_pairs_per_group < 0:
            raise ValueError("max_pairs_per_group must be >= 0")

    def sentinels_per_batch(self) -> int:
        if self.sentinel_share == 0:
            return 0
        return min(self.batch_size - 1, max(1, round(self.batch_size * self.sentinel_share)))


def _h(*parts) -> str:
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:12]


def _num(v: str) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _degraded(rows: list[dict]) -> dict:
    """The most degraded distortion: lowest MS-SSIM, else lowest PSNR, else lowest bpp."""
    for col in ("ms_ssim", "psnr", "bpp"):
        vals = [_num(r[col]) for r in rows]
        if all(not math.isnan(v) for v in vals):
            return rows[int(np.argmin(vals))]
    return rows[0]


def make_trials(index_path: str | Path, out_csv: str | Path, cfg: TrialsConfig) -> list[dict]:
    """Build the trial rows (not written). Paths are made relative to ``out_csv``'s folder."""
    cfg.check()
    index = read_table(index_path, INDEX_COLUMNS, INDEX_ID)
    if index.empty:
        raise ValueError(f"{index_path}: no distortions")
    rng = np.random.default_rng(cfg.seed)

    def rel(p: str) -> str:
        return rel_path(resolve_path(p, index_path), out_csv)

    recs = index.sort_values("dist_id").to_dict("records")
    by_ref: dict[tuple[str, str], list[dict]] = {}
    for r in recs:
        by_ref.setdefault((r["ref_id"], r["ref_path"]), []).append(r)

    tests = []
    for (ref_id, ref_path), rows in sorted(by_ref.items()):
        groups: dict[str, list[dict]] = {}
        for r in rows:
            groups.setdefault(r["target_bpp"], []).append(r)
        for target, grp in sorted(groups.items()):
            pairs = [(x, y) for x, y in itertools.combinations(grp, 2)
                     if not (x["sha256"] and x["sha256"] == y["sha256"])]
            if cfg.max_pairs_per_group and len(pairs) > cfg.max_pairs_per_group:
                keep = rng.choice(len(pairs), cfg.max_pairs_per_group, replace=False)
                pairs = [pairs[i] for i in sorted(keep)]
            for x, y in pairs:
                if rng.random() < 0.5:
                    x, y = y, x
                tests.append(dict(
                    trial_id="t-" + _h(*sorted((x["dist_id"], y["dist_id"]))),
                    ref_id=ref_id, ref_path=rel(ref_path),
                    a_id=x["dist_id"], a_path=rel(x["path"]), b_id=y["dist_id"],
                    b_path=rel(y["path"]), a_codec=x["codec"], b_codec=y["codec"],
                    a_bpp=x["bpp"], b_bpp=y["bpp"], target_bpp=target,
                    kind="test", expected=""))
    if not tests:
        raise ValueError(f"{index_path}: no two distortions share a reference and a target_bpp; "
                         "nothing to compare")
    order = rng.permutation(len(tests))
    tests = [tests[i] for i in order]

    # one sentinel candidate per reference: reference itself vs its most degraded distortion
    pool = []
    for (ref_id, ref_path), rows in sorted(by_ref.items()):
        d = _degraded(rows)
        pool.append((ref_id, ref_path, d))
    n_sent = cfg.sentinels_per_batch()
    per_batch = cfg.batch_size - n_sent
    out: list[dict] = []
    pool_order: list[int] = []
    for bi, start in enumerate(range(0, len(tests), per_batch)):
        batch_id = f"b{bi:04d}"
        batch = [dict(t, batch_id=batch_id) for t in tests[start:start + per_batch]]
        for k in range(n_sent):
            if not pool_order:
                pool_order = list(rng.permutation(len(pool)))
            ref_id, ref_path, d = pool[pool_order.pop()]
            ref_side = "a" if rng.random() < 0.5 else "b"
            ref_cols = dict(id=ref_id, path=rel(ref_path), codec=REFERENCE_CODEC, bpp="")
            deg_cols = dict(id=d["dist_id"], path=rel(d["path"]), codec=d["codec"], bpp=d["bpp"])
            sides = {ref_side: ref_cols, ("b" if ref_side == "a" else "a"): deg_cols}
            batch.append(dict(
                trial_id="s-" + _h(batch_id, k, ref_id, d["dist_id"]), batch_id=batch_id,
                ref_id=ref_id, ref_path=rel(ref_path),
                **{f"{s}_{c}": sides[s][c] for s in "ab" for c in ("id", "path", "codec", "bpp")},
                target_bpp=d["target_bpp"], kind="sentinel", expected=ref_side))
        perm = rng.permutation(len(batch))
        for i in perm:
            row = batch[i]
            row["left"] = "a" if rng.random() < 0.5 else "b"
            out.append({c: row[c] for c in TRIALS_COLUMNS})
    return out


def build(index_path: str | Path, out_dir: str | Path, cfg: TrialsConfig,
          force: bool = False) -> tuple[Path, bool]:
    """Write ``out_dir/trials.csv`` and its meta file. Returns (path, whether it was written)."""
    out_dir = Path(out_dir)
    out_csv = out_dir / "trials.csv"
    meta_path = out_dir / "trials.meta.json"
    key = dict(index=str(Path(index_path).resolve()), index_sha256=sha256_file(index_path),
               config=asdict(cfg))
    if not force and out_csv.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if {k: meta.get(k) for k in key} == key and meta.get("trials_sha256") == \
                sha256_file(out_csv):
            return out_csv, False
    rows = make_trials(index_path, out_csv, cfg)
    write_table(out_csv, rows, TRIALS_COLUMNS, TRIALS_ID)
    meta = dict(key, trials_sha256=sha256_file(out_csv), n_trials=len(rows),
                n_test=sum(r["kind"] == "test" for r in rows),
                n_sentinel=sum(r["kind"] == "sentinel" for r in rows),
                n_batches=len({r["batch_id"] for r in rows}))
    atomic_write_text(meta_path, json.dumps(meta, indent=2) + "\n")
    return out_csv, True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mturk.trials", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--index", default=str(runs_dir() / "distortions" / "index.csv"),
                   help="the distortions index.csv (default: %(default)s)")
    p.add_argument("--out", default=str(runs_dir() / "study"),
                   help="output folder for trials.csv (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="rewrite even when up to date")
    add_config_args(p, TrialsConfig)
    args = p.parse_args(argv)
    try:
        cfg = config_from_args(TrialsConfig, args)
        path, written = build(args.index, args.out, cfg, force=args.force)
    except (ValueError, FileNotFoundError) as e:
        print(f"mturk.trials: error: {e}", file=sys.stderr)
        return 2
    meta = json.loads((Path(args.out) / "trials.meta.json").read_text())
    state = "wrote" if written else "up to date:"
    print(f"{state} {path}: {meta['n_trials']} trials ({meta['n_test']} test, "
          f"{meta['n_sentinel']} sentinel) in {meta['n_batches']} batches")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""2AFC trials from ``index.csv``: ``python -m mturk.trials --index IDX --out runs/study``.

A test trial shows a reference and two distortions of that same reference (same crop) made for the
same ``target_bpp`` by different codecs or settings; every such pair is asked once (pairs whose
decoded images are identical are skipped). ``a``/``b`` and the side shown on the left are drawn at
random and recorded. A sentinel trial has an obvious answer: one side is a near-lossless encode of
the reference (``mturk.design.crops``: never the reference's own file), the other the most degraded
distortion of that reference (lowest MS-SSIM, else lowest PSNR, else lowest bpp); ``expected``
names the near-lossless side. A repeat trial (``repeat_of`` names the test it repeats) asks one of
the batch's easiest test pairs (largest MS-SSIM, else PSNR, gap) again with the sides swapped, so
``mturk.analysis.worker_quality`` can see whether a worker answers the same pair the same way.

Each batch (one HIT) holds ``batch_size`` trials: ``round(batch_size * sentinel_share)``
sentinels (at least one when the share is > 0), ``repeats`` repeats, the rest tests. Everything is
drawn from one seeded generator, so the same index and config give the same ``trials.csv``; a
second run with nothing changed does nothing.

Every image shown is written to ``OUT/views/``: its centre ``--crop`` pixels (default 256, 0 =
whole images), all by one PNG encoder. The page shows them at one image pixel per device pixel
or larger (``mturk.web.page``), so a crop must fit three times across the worker's window.

``--strategy active`` (a study in rounds, ``mturk.active.study_rounds``): only the test pairs
``mturk.active.acquire`` picks from these candidates, given the labels so far and the current
metric's predictions; ``--strategy random`` (the default) is the study above, unchanged.

Outputs: ``OUT/trials.csv`` (``mturk.schema.TRIALS_COLUMNS``, paths relative to OUT),
``OUT/views/`` and ``OUT/trials.meta.json`` (index hash, config, counts).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from plic.cli import command, parser
from plic.config_args import add_config_args, config_from_args, option
from plic.fsio import atomic_write_text, sha256_file
from plic.paths import runs_dir
from plic.tables import rel_path, resolve_path, write_table

from ..active.acquire import RoundConfig, input_hashes, selector
from ..schema import TRIALS_COLUMNS, TRIALS_ID
from .crops import ViewWriter
from .rating import RATING_DESIGNS, make_rating_trials
from .study import check_design
from .twoafc import make_twoafc_trials


@dataclass
class TrialsConfig:
    batch_size: int = option(20, "trials per batch (one HIT)")
    sentinel_share: float = option(0.1, "share of each batch that is sentinel trials with an "
                                        "obvious answer")
    repeats: int = option(2, "test pairs per batch asked twice, sides swapped (consistency check)")
    crop: int = option(256, "show the centre CROP x CROP pixels of every image (0 = whole images)")
    seed: int = option(0, "seed of every random choice")
    max_pairs_per_group: int = option(0, "at most this many pairs per (reference, target_bpp); 0 "
                                         "= all pairs")
    design: str = option("2afc", "2afc | acr | dsis (absolute ratings: mturk.design.rating; "
                                 "sentinels and repeats apply to 2afc only)")

    def check(self) -> None:
        check_design(self.design)
        if self.batch_size < 2:
            raise ValueError("batch_size must be >= 2")
        if not 0 <= self.sentinel_share < 1:
            raise ValueError("sentinel_share must be in [0, 1)")
        if self.max_pairs_per_group < 0:
            raise ValueError("max_pairs_per_group must be >= 0")
        if self.repeats < 0 or self.crop < 0:
            raise ValueError("repeats and crop must be >= 0")
        if self.batch_size - self.sentinels_per_batch() - self.repeats < 1:
            raise ValueError("batch_size leaves no room for a test trial beside the sentinels "
                             "and repeats")

    def sentinels_per_batch(self) -> int:
        if self.sentinel_share == 0:
            return 0
        return min(self.batch_size - 1, max(1, round(self.batch_size * self.sentinel_share)))


class _Views:
    """Trial image paths: written once into ``out/views``, relative to the trials table."""

    def __init__(self, index_path, out_csv, crop: int):
        self.index_path, self.out_csv = index_path, out_csv
        self.w = ViewWriter(Path(out_csv).parent / "views", crop)
        self.shapes: dict[str, tuple] = {}

    def path(self, image_id: str, path_in_index: str, ref_id: str) -> str:
        p, shape = self.w.view(image_id, resolve_path(path_in_index, self.index_path))
        want = self.shapes.setdefault(ref_id, shape)
        if shape != want:
            raise ValueError(f"{image_id}: shown part is {shape[1]}x{shape[0]}, its reference's "
                             f"is {want[1]}x{want[0]} (distortions must keep the size)")
        return rel_path(p, self.out_csv)

    def near(self, ref_id: str, ref_path: str) -> tuple[str, str, float]:
        nid, p, rate = self.w.near(ref_id, resolve_path(ref_path, self.index_path))
        return nid, rel_path(p, self.out_csv), rate


def make_trials(index_path: str | Path, out_csv: str | Path, cfg: TrialsConfig,
                select=None) -> list[dict]:
    """Build the trial rows (not written) and write their images into ``out_csv``'s
    ``views/``. Paths are relative to ``out_csv``'s folder. ``select`` (an active round,
    ``mturk.active.acquire.selector``) keeps a subset of the candidate tests, best first."""
    cfg.check()
    views = _Views(index_path, out_csv, cfg.crop)
    if cfg.design in RATING_DESIGNS:
        return make_rating_trials(index_path, cfg, views)
    return make_twoafc_trials(index_path, cfg, views, select)


def build(index_path: str | Path, out_dir: str | Path, cfg: TrialsConfig,
          force: bool = False, rounds: RoundConfig | None = None) -> tuple[Path, bool]:
    """Write ``out_dir/trials.csv`` and its meta file. Returns (path, whether it was written).
    ``rounds``: the strategy (``mturk.active.acquire``); random, the default, is today's study."""
    rounds = rounds or RoundConfig()
    rounds.check()
    out_dir = Path(out_dir)
    out_csv = out_dir / "trials.csv"
    meta_path = out_dir / "trials.meta.json"
    key = dict(index=str(Path(index_path).resolve()), index_sha256=sha256_file(index_path),
               config=asdict(cfg))
    if rounds.strategy != "random":             # a random study keeps today's meta
        key["round"] = dict(asdict(rounds), **input_hashes(rounds))
    if not force and out_csv.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if {k: meta.get(k) for k in key} == key and meta.get("trials_sha256") == \
                sha256_file(out_csv):
            return out_csv, False
    rows = make_trials(index_path, out_csv, cfg,
                       select=selector(rounds) if rounds.strategy == "active" else None)
    write_table(out_csv, rows, TRIALS_COLUMNS, TRIALS_ID)
    meta = dict(key, design=cfg.design, trials_sha256=sha256_file(out_csv), n_trials=len(rows),
                n_test=sum(r["kind"] == "test" for r in rows),
                n_sentinel=sum(r["kind"] == "sentinel" for r in rows),
                n_repeat=sum(bool(r["repeat_of"]) for r in rows),
                n_batches=len({r["batch_id"] for r in rows}))
    atomic_write_text(meta_path, json.dumps(meta, indent=2) + "\n")
    return out_csv, True


PROG = "python -m mturk.trials"


@command(PROG)
def main(argv: list[str] | None = None) -> int:
    p = parser(PROG, __doc__)
    p.add_argument("--index", default=str(runs_dir() / "distortions" / "index.csv"),
                   help="the distortions index.csv (default: %(default)s)")
    p.add_argument("--out", default=str(runs_dir() / "study"),
                   help="output folder for trials.csv (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="rewrite even when up to date")
    add_config_args(p, TrialsConfig)
    add_config_args(p, RoundConfig)
    args = p.parse_args(argv)
    cfg = config_from_args(TrialsConfig, args)
    path, written = build(args.index, args.out, cfg, force=args.force,
                          rounds=config_from_args(RoundConfig, args))
    meta = json.loads((Path(args.out) / "trials.meta.json").read_text())
    state = "wrote" if written else "up to date:"
    print(f"{state} {path}: {meta['n_trials']} trials ({meta['n_test']} test of which "
          f"{meta['n_repeat']} repeats, {meta['n_sentinel']} sentinel) in {meta['n_batches']} "
          f"batches; images in {Path(args.out) / 'views'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

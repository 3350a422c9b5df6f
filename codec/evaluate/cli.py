"""``python -m codec.evaluate``: the evaluation report (see the package docstring)."""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
from pathlib import Path

from plic.cli import CliError, command, parser, positive_numbers
from plic.cluster import ClusterError

EPILOG = """\
examples:
  python -m codec.evaluate --model runs/train/hific-0.15/best.pt --data kodak
  python -m codec.evaluate --model a.pt --model b.pt --target-bpp 0.15,0.3 \\
      --classic jpeg,hevc-bpgcfg
  python -m codec.evaluate --classic jpeg,webp,hevc-bpgcfg --data kodak      (classic codecs only)
  python -m codec.evaluate --model a.pt --data kodak --cluster local:2       (on a Dask cluster)

outputs (in --out): results.csv (per image), summary.csv and results.json (per method and
target), table.md (Table 1), bd_rate.md, rd_psnr.png, rd_ms_ssim.png, rd_lpips.png,
rd_dists.png, crops/ and report.html. A rerun reuses every cached encode, metric value and
Inception feature.
"""


PROG = "python -m codec.evaluate"
_BPPS = positive_numbers("bpp values must be positive")


def build_parser() -> argparse.ArgumentParser:
    from plic.cluster import add_cluster_arg
    from plic.datasets import add_data_args

    p = parser(
        PROG, epilog=EPILOG,
        description="Evaluate learned codec checkpoints and classic codecs at matched real "
                    "bitrates: bpp from the files, PSNR, MS-SSIM, LPIPS-Alex/VGG/Squeeze, DISTS, "
                    "the fitted metric, FID/KID on 256x256 patches; tables, RD plots, BD-rates "
                    "and an HTML report.")
    p.add_argument("--model", action="append", default=[], metavar="CKPT",
                   help="codec checkpoint (repeatable); evaluated at its track's target_bpp "
                        "(recorded in the checkpoint) unless --target-bpp is given")
    p.add_argument("--label", action="append", default=[],
                   help="display name per --model, in order (default: ours-<model>-<track>)")
    add_data_args(p)
    p.add_argument("--target-bpp", type=_BPPS, default=None,
                   help="comma-separated targets for every --model (default: each checkpoint's)")
    p.add_argument("--classic", default="jpeg,webp,hevc-bpgcfg",
                   help="comma-separated classic codecs from the distortions backends, or "
                        "'none' (default: jpeg,webp,hevc-bpgcfg; also avif, jxl, jpeg444, bpg); "
                        "'learned' adds every codec checkpoint in --checkpoint-dir as a "
                        "baseline (learned-<stem>), 'learned-NAME' one of them")
    p.add_argument("--checkpoint-dir", default=None, metavar="DIR",
                   help="folder of the learned baselines' checkpoints (default: checkpoints/ "
                        "of the repository)")
    p.add_argument("--x265-preset", default="slow",
                   help="x265 preset of hevc-bpgcfg (default: slow, as python -m distortions; "
                        "give the one the --dist-cache was made with to reuse it)")
    p.add_argument("--classic-targets", type=_BPPS, default=(0.075, 0.15, 0.3, 0.6),
                   help="targets for the classic codecs' curves; our targets are always added "
                        "(default: 0.075,0.15,0.3,0.6)")
    p.add_argument("--metric", default=None,
                   help="fitted metric checkpoint (runs/metric.pt) to report beside LPIPS")
    p.add_argument("--lpips", default="alex,vgg,squeeze",
                   help="official LPIPS networks to report, or 'none' (default: all three)")
    p.add_argument("--no-dists", action="store_true",
                   help="leave out DISTS (Ding et al. 2020; weights from the dists-pytorch wheel)")
    p.add_argument("--no-fid", action="store_true", help="skip FID/KID (the slowest part on CPU)")
    p.add_argument("--fid-plain-grid", action="store_true",
                   help="FID patches on the plain 256 grid only (default adds HiFiC's grid "
                        "shifted by 128 px)")
    p.add_argument("--out", default=None, help="output folder (default: runs/eval/<data>)")
    p.add_argument("--dist-cache", default=None,
                   help="distortions output folder reused for the classic codecs (default: "
                        "runs/distortions, the cache `python -m distortions` fills)")
    p.add_argument("--crop-images", type=int, default=2,
                   help="images shown as side-by-side crops in the HTML (default 2)")
    p.add_argument("--crop-size", type=int, default=256,
                   help="side of those crops in pixels, shown at 1:1 (default 256)")
    p.add_argument("--simulated", default="",
                   help="text of a SIMULATED banner for every output (the demo sets it)")
    p.add_argument("--jobs", type=int, default=0, help="worker processes for the classic codecs")
    add_cluster_arg(p)
    p.add_argument("--cache-only", action="store_true",
                   help="measure and cache every value, write no tables or report (a later run "
                        "with the same --out reuses them; make demo runs one beside training)")
    p.add_argument("--per-pair", action="store_true",
                   help="the per-pair reference path: each metric on each pair on its own "
                        "(slower; the default path gives the same numbers, see "
                        "tests/codec/evaluate/test_fast_path.py)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _names(text: str) -> tuple[str, ...]:
    return () if text.strip().lower() in ("", "none") else tuple(
        v.strip() for v in text.split(",") if v.strip())


@command(PROG, errors=(ClusterError,))
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from plic.checkpoint import git_commit
    from plic.datasets import records_from_args
    from plic.paths import runs_dir

    from .encode import track_from_checkpoint
    from .run import EvalConfig
    from .write import write_all

    if args.label and len(args.label) != len(args.model):
        raise CliError("give one --label per --model")
    records = records_from_args(args)
    tracks = [track_from_checkpoint(m, args.label[i] if args.label else None, args.target_bpp)
              for i, m in enumerate(args.model)]
    classic, backend = _classic_codecs(_names(args.classic), args.checkpoint_dir,
                                       args.x265_preset)
    if not tracks and not classic:
        raise CliError("nothing to evaluate: give --model and/or --classic")
    targets = sorted({*args.classic_targets, *(t for tr in tracks for t in tr.targets)})
    data_name = Path(args.data).stem
    out = Path(args.out or runs_dir() / "eval" / data_name)
    out.mkdir(parents=True, exist_ok=True)
    cfg = EvalConfig(out=out, tracks=tracks, classic=classic, classic_targets=tuple(targets),
                     dist_out=Path(args.dist_cache or runs_dir() / "distortions"),
                     lpips=_names(args.lpips), metric=args.metric, dists=not args.no_dists,
                     fid=not args.no_fid,
                     fid_shifted=not args.fid_plain_grid, jobs=args.jobs, fast=not args.per_pair,
                     progress=not args.no_progress, backend=backend)
    print(f"evaluating {len(tracks)} model(s) and {len(classic)} classic codec(s) on "
          f"{len(records)} images of {data_name}", file=sys.stderr)
    try:
        rows, summary, info = _evaluate(records, cfg, args.cluster)
    except KeyboardInterrupt:
        print(f"interrupted: what was measured is cached in {out / 'cache'}; run the same "
              f"command again to finish the rest", file=sys.stderr)
        return 130
    errors = info["errors"]
    if errors:
        print(f"{len(errors)} item(s) failed (every other item completed; their rows say "
              f"'failed', and a rerun retries only these):", file=sys.stderr)
        for where, msg in errors:
            print(f"error: {where}: {msg}", file=sys.stderr)
    if args.cache_only:
        print(f"cached: {sum(r['status'] == 'ok' for r in rows)} decoded images measured, "
              f"in {out / 'cache'}", file=sys.stderr)
        return 1 if errors else 0
    simulated = args.simulated or _simulated(args.metric, tracks)
    meta = {"data": data_name, "n_images": len(records),
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": "python -m codec.evaluate " + shlex.join(argv if argv is not None
                                                                else sys.argv[1:]),
            "git_commit": git_commit(), "simulated": simulated,
            "tracks": [{"label": t.label, "checkpoint": str(t.checkpoint), "sha256": t.sha256,
                        "targets": list(t.targets)} for t in tracks],
            "classic": list(classic), "targets": targets, "metric": args.metric,
            "metric_names": info["metric_names"], "notes": info["notes"],
            "fid_grid": "plain" if args.fid_plain_grid else "plain+shifted"}
    report = write_all(out, rows, summary, records, meta, anchors=data_name == "kodak",
                       crop_images=args.crop_images, crop_size=args.crop_size)
    for n in info["notes"]:
        print(f"note: {n}", file=sys.stderr)
    print((out / "table.md").read_text())
    print(f"report: {report}")
    return 1 if errors else 0


def _evaluate(records, cfg, cluster_spec):
    from plic.cluster import Cluster

    from .run import evaluate

    if cluster_spec is None:
        return evaluate(records, cfg)
    with Cluster(cluster_spec) as cluster:
        return evaluate(records, cfg, cluster=cluster)


def _classic_codecs(names: tuple[str, ...], checkpoint_dir: str | None, x265_preset: str):
    """(codec names, BackendOptions): ``learned`` expands to every codec checkpoint of
    ``checkpoint_dir`` (as ``python -m distortions`` names them), to nothing when it has none;
    unknown names and a missing ``learned-NAME`` are errors."""
    from distortions.backends import BackendOptions, choices_text, is_known
    from distortions.backends.hevc import X265_PRESETS
    from distortions.checkpoints import choose_learned, select_codecs

    if x265_preset not in X265_PRESETS:
        raise ValueError(f"--x265-preset must be one of {', '.join(X265_PRESETS)}")
    bad = [n for n in names if not is_known(n)]
    if bad:
        raise ValueError(f"unknown codec(s) {', '.join(bad)}; choose from {choices_text()}")
    learned = {}
    if any(n.startswith("learned") for n in names):
        choice = choose_learned(None, checkpoint_dir)
        print(choice.summary(), file=sys.stderr)
        learned = choice.codecs
        if not learned:
            names = tuple(n for n in names if n != "learned")
    codecs, errors = select_codecs(names, learned, ())
    if errors:
        raise ValueError("; ".join(errors))
    return codecs, BackendOptions(x265_preset=x265_preset, learned=tuple(learned.items()))


def _simulated(metric: str | None, tracks) -> str:
    """A banner when the metric or a checkpoint says its labels came from a simulated crowd."""
    import torch

    for path in [metric, *(t.checkpoint for t in tracks)]:
        if not path:
            continue
        prov = torch.load(path, map_location="cpu", weights_only=True).get("provenance") or {}
        if _says_simulated(prov):
            return (f"{path} was made from SIMULATED crowd judgments (a simulated crowd, not "
                    f"people): these numbers show the pipeline works, not what people prefer.")
    return ""


def _says_simulated(obj) -> bool:
    """True where any key named like 'simulated' holds a true value (nested dicts/lists)."""
    if isinstance(obj, dict):
        return any(("simulated" in str(k).lower() and bool(v) and v not in ("false", "0"))
                   or _says_simulated(v) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return any(_says_simulated(v) for v in obj)
    return False

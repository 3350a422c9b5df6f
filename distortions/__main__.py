"""``python -m distortions``: reference images -> distorted images at target bitrates.

Examples::

    python -m distortions                                  # the 5 sample images, default codecs
    python -m distortions --data kodak                     # the 24 Kodak images
    python -m distortions --crop 256 --codecs jpeg,hevc-bpgcfg --targets 0.15,0.3
    python -m distortions --codecs learned --checkpoint mine=runs/train/ckpt.pt
    python -m distortions --data kodak --cluster local:2   # on a Dask LocalCluster
    python -m distortions --data-root /shared/data --out /shared/dist --cluster tcp://HOST:8786

Learned codecs: by default one per codec checkpoint in checkpoints/*.pt, named
``learned-<file stem>``; repeated ``--checkpoint [NAME=]PATH`` options replace that list.
``--codecs learned`` selects all learned codecs, ``--codecs learned-NAME`` one of them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from plic.cli import CliError, command, parser, positive_numbers, report
from plic.cluster import Cluster, ClusterError, add_cluster_arg
from plic.datasets import add_data_args
from plic.paths import runs_dir

from .backends import BackendOptions, choices_text, default_names, is_known, names
from .backends.hevc import X265_PRESETS
from .checkpoints import (
    DEFAULT_CHECKPOINT_DIR,
    read_inputs,
    select_codecs,
)
from .run import DEFAULT_TARGETS, DistortionsConfig, run


def _codecs(text: str) -> tuple[str, ...]:
    codecs = tuple(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))
    bad = [n for n in codecs if not is_known(n)]
    if bad or not codecs:
        raise argparse.ArgumentTypeError(f"unknown codec(s) {bad}; choose from {choices_text()}")
    return codecs


PROG = "python -m distortions"


def build_parser() -> argparse.ArgumentParser:
    p = parser(
        PROG,
        formatter_class=argparse.HelpFormatter,
        description="Compress reference images with classic and learned codecs at target "
                    "bitrates (per image: the highest quality whose real file is at or under "
                    "each target) and write decoded PNGs, bitstreams and index.csv. Reruns "
                    "skip what is already done.")
    add_data_args(p)
    p.add_argument("--out", default=None,
                   help="output folder (default: runs/distortions)")
    p.add_argument("--codecs", type=_codecs, default=None,
                   help=f"comma-separated codecs from {', '.join(names())}, learned-NAME "
                        f"(default: {','.join(default_names())}, hevc-bpgcfg-pd when its "
                        f"checkpoint is in --checkpoint-dir, and every learned codec; bpg "
                        f"needs bpgenc; learned = all learned codecs)")
    p.add_argument("--targets", type=positive_numbers("targets must be positive bpp values"),
                   default=DEFAULT_TARGETS,
                   help="comma-separated target bpps (default: "
                        f"{','.join(str(t) for t in DEFAULT_TARGETS)})")
    p.add_argument("--crop", type=int, default=None, metavar="SIZE",
                   help="code a centred SIZE x SIZE crop of each image (the cropped reference "
                        "is written to OUT/refs); default: full images")
    p.add_argument("--jobs", type=int, default=0,
                   help="worker processes here, one (image, codec) item each (default 0: all "
                        "cores)")
    add_cluster_arg(p)
    p.add_argument("--ffmpeg", default="ffmpeg", help="ffmpeg binary for hevc-bpgcfg")
    p.add_argument("--x265-preset", default="slow", choices=X265_PRESETS,
                   help="x265 preset for hevc-bpgcfg (bpgenc uses placebo; slow matches it "
                        "within noise and is faster; default: slow)")
    p.add_argument("--bpgenc", default="bpgenc", help="bpgenc binary for the bpg codec")
    p.add_argument("--bpgdec", default="bpgdec", help="bpgdec binary for the bpg codec")
    p.add_argument("--checkpoint", action="append", default=None, metavar="[NAME=]PATH",
                   help="codec checkpoint (plic.checkpoint format) for a learned codec named "
                        "learned-NAME (default NAME: the file's stem); repeatable; replaces "
                        "the checkpoints found in --checkpoint-dir")
    p.add_argument("--postdecode-checkpoint", default=None, metavar="PATH",
                   help="the learned stage of hevc-bpgcfg-pd (python -m codec.train.postdecode; "
                        "default: hevc-bpgcfg-pd.pt in --checkpoint-dir)")
    p.add_argument("--hevc-cache", default=None, metavar="DIR",
                   help="keep every HEVC stream hevc-bpgcfg and hevc-bpgcfg-pd code in DIR and "
                        "reuse it (same image, QP, ffmpeg/x265 and preset); default: "
                        "hevc-bpgcfg keeps none, hevc-bpgcfg-pd uses runs/postdecode/hevc-cache")
    p.add_argument("--checkpoint-dir", default=None, metavar="DIR",
                   help="folder whose codec checkpoints (*.pt) are the learned codecs when no "
                        "--checkpoint is given (default: checkpoints/ of the repository)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def postdecode_checkpoint(args) -> str | None:
    """hevc-bpgcfg-pd's checkpoint: ``--postdecode-checkpoint``, else ``hevc-bpgcfg-pd.pt`` in
    the learned codecs' folder (``--checkpoint-dir``, default checkpoints/) when it is there;
    found, the codec joins the default codecs."""
    if args.postdecode_checkpoint:
        return args.postdecode_checkpoint
    folder = Path(args.checkpoint_dir) if args.checkpoint_dir else DEFAULT_CHECKPOINT_DIR
    path = folder / "hevc-bpgcfg-pd.pt"
    return str(path) if path.is_file() else None


@command(PROG, errors=(ClusterError,))
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.crop is not None and args.crop < 16:
        raise CliError("--crop must be at least 16 pixels")
    records, learned = read_inputs(args)
    postdecode = postdecode_checkpoint(args)
    defaults = default_names() + (("hevc-bpgcfg-pd",) if postdecode else ())
    codecs, choice_errors = select_codecs(args.codecs, learned.codecs, defaults)
    if args.codecs is None or any(c.startswith("learned") for c in args.codecs):
        print(learned.summary())
        for line in learned.skipped:
            print(f"  {line}")
    if not codecs:
        raise CliError("; ".join(choice_errors) or "no codec to run")
    for msg in choice_errors:
        report(msg, PROG)
    cfg = DistortionsConfig(
        out=str(Path(args.out) if args.out else runs_dir() / "distortions"),
        codecs=codecs, targets=args.targets, crop=args.crop, jobs=args.jobs,
        backend=BackendOptions(ffmpeg=args.ffmpeg, x265_preset=args.x265_preset,
                               bpgenc=args.bpgenc, bpgdec=args.bpgdec,
                               learned=tuple(learned.codecs.items()),
                               postdecode=postdecode or args.postdecode_checkpoint,
                               hevc_cache=args.hevc_cache),
        progress=not args.no_progress)
    try:
        done = _run(records, cfg, args.cluster)
    except KeyboardInterrupt:
        print(f"interrupted: the items done so far are in {cfg.out}; run the same command "
              f"again to finish the rest", file=sys.stderr)
        return 130
    print(f"{cfg.out}/index.csv: {done.new_rows} new rows, {done.reused_rows} kept, "
          f"{done.unreachable} unreachable (codec, image, target), {done.encodes} encodes"
          + ("" if done.wrote_index else "; index unchanged"))
    if done.errors:
        print(f"{len(done.errors)} error(s); every other item of the {done.items} "
              f"completed, and a rerun retries only these:", file=sys.stderr)
    for where, msg in done.errors:
        print(f"error: {where}: {msg}", file=sys.stderr)
    return 1 if done.errors or choice_errors else 0


def _run(records, cfg: DistortionsConfig, cluster_spec):
    if cluster_spec is None:
        return run(records, cfg)
    with Cluster(cluster_spec) as cluster:
        return run(records, cfg, cluster=cluster)


if __name__ == "__main__":
    raise SystemExit(main())

"""Trainer parity: our trainer beside CompressAI's reference trainer, same model size, same data.

    python -m benchmarks.train_parity [--lambdas 0.0035 0.0067 0.013] [--steps 2000] \\
        [--crop 64] [--batch-size 8] [--variants default delta1] [--out runs/parity]

For each lambda, side by side (started together, each ``nice -n 19`` on one thread, data loaded
in the training process): ``bmshj2018-hyperprior`` at CompressAI's size (preset ``paper``:
N=128, M=192) trained by ``codec.train``, once per ``--variants`` entry, and CompressAI 1.2.8's
own ``examples/train.py`` (shipped in its wheel, run unmodified through its ``main``; its model is
``bmshj2018-hyperprior`` quality 3, N=128, M=192). Then both are coded on Kodak with real
bitstreams (``codec.api`` for ours, ``compress()``/``decompress()`` for theirs).

The losses are the same number. Theirs (``compressai.losses.RateDistortionLoss``) is
``lmbda * 255^2 * MSE[0,1] + bpp``; ours is ``lambda_rate * bpp + k_mse * MSE[0,255]`` and
``MSE[0,255] = 255^2 * MSE[0,1]``, so ``lambda_rate = 1, k_mse = lmbda`` (``loss_weights``)
gives equal losses and equal gradients: not only the same optimum, but the same gradient-norm
clipping (both clip at 1.0) and the same Adam steps. Both use Adam at 1e-4 (their aux/our top
prior at 1e-3) and no learning-rate decay on our side (``lr_gamma 1``); theirs has
``ReduceLROnPlateau`` on its test loss (patience 10 epochs; each epoch here is
``len(train images) / batch`` steps), which the report says whether it fired.

Speed: steps per second over the steps both trainers ran at the same time (the overlap of their
wall-clock windows), excluding each process's first logged interval (warm-up) and the intervals
that hold a checkpoint or a test pass. The 1-minute load average is sampled during each pair.

Resumable: each run resumes where it stopped (ours ``--resume``, theirs ``--checkpoint``);
finished runs and evaluations are not redone. Writes ``OUT/parity.json`` and ``.md``; with
``--result`` also the JSON (and ``--plot``) where the README points.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import time
from pathlib import Path

from plic.fsio import atomic_write_text

ANCHOR = "compressai-bmshj2018-hyperprior_mse_cpu"
VARIANTS = {  # our trainer's settings per variant (TrainConfig fields); "default": as shipped
    "default": {},
    "delta1": {"delta_range": (1.0, 1.0)},
}
TIMING = "timing.jsonl"
DONE = "done.json"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".bmp")


def loss_weights(lmbda: float) -> dict:
    """Our (lambda_rate, k_mse) for CompressAI's ``--lambda``: the same loss, term by term."""
    return {"lambda_rate": 1.0, "k_mse": float(lmbda)}


def compressai_train_module():
    """CompressAI's ``examples/train.py`` as a module, its point-cloud imports stubbed where
    missing (``benchmarks.codec_decode``); ImportError when compressai is not installed."""
    import importlib

    from .compressai_import import import_compressai_zoo

    models, why = import_compressai_zoo("image_models")
    if models is None:
        raise ImportError(f"compressai not importable ({why}); pip install --no-deps "
                          f"compressai==1.2.8")
    return importlib.import_module("examples.train")


# ---- the data folder both trainers read ----------------------------------------------------

def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def link_data(a, dest: Path) -> Path:
    """``dest/train`` and ``dest/test``: symlinks to the training images and a few test images
    (CompressAI's ImageFolder wants both); our trainer reads ``dest/train``. Idempotent."""
    from plic.datasets import resolve_data

    for split, src, count in (("train", a.data_split, 0), ("test", a.test_split, a.test_images)):
        records = resolve_data(a.data, a.data_root or None, split=src or None)[:count or None]
        if not records:
            raise FileNotFoundError(f"no images in {a.data} split {src!r}")
        d = dest / split
        d.mkdir(parents=True, exist_ok=True)
        for r in records:
            link = d / Path(r.path).name
            if not link.is_symlink():
                link.symlink_to(Path(r.path).resolve())
    return dest


# ---- one training run (a child process) ----------------------------------------------------

def _timing_writer(path: Path):
    pid = os.getpid()

    def log(**row):
        row.update(pid=pid, t=time.time(), cpu=time.process_time())
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")
    return log


def _our_config(a, lmbda: float, out: Path, variant: str):
    from codec.train.config import TrainConfig

    steps = a.steps
    log_every = max(1, min(100, steps // 100))
    ckpt = max(log_every, a.ckpt_every // log_every * log_every)  # a checkpoint ends a log row
    kw = dict(model="bmshj2018-hyperprior", preset=a.preset, steps=steps,
              batch_size=a.batch_size, crop=a.crop, data=str(out.parent.parent / "data" / "train"),
              data_split="", val_data=a.val_data, val_images=1, val_crop=a.crop,
              val_every=steps, ckpt_every=ckpt, out=str(out), loss="mse", lr=1e-4, lr_prior=1e-3,
              lr_gamma=1.0, grad_clip=1.0, workers=0, seed=a.seed, device="cpu", threads=1,
              resume=True, **loss_weights(lmbda))
    kw.update(VARIANTS[variant])
    return TrainConfig(**kw), ckpt


def snapshot(out: Path, step: int, src: Path, a) -> None:
    """Copy a run's checkpoint after ``step`` steps to ``OUT/snap/STEP/lambda-L/NAME`` (what
    ``--eval-at STEP`` codes) when ``step`` is a multiple of ``--snapshot-every``."""
    if not a.snapshot_every or not step or step % a.snapshot_every:
        return
    dest = out.parent.parent / "snap" / str(step) / out.parent.name / out.name
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest / src.name)
    atomic_write_text(dest / DONE, json.dumps({"steps": step}) + "\n")


def run_ours(a, lmbda: float, out: Path, variant: str) -> None:
    from codec.train import rundir
    from codec.train.loop import train

    cfg, ckpt = _our_config(a, lmbda, out, variant)
    log = _timing_writer(out / TIMING)
    append = rundir.append_metrics
    written = [0]  # the step whose checkpoint the loop writes after this log row

    def append_timed(folder, row):
        if "loss" in row:
            snapshot(out, written[0], out / "last.pt", a)  # written by now
            written[0] = row["step"] if row["step"] % ckpt == 0 else 0
            log(step=row["step"], ckpt_after=row["step"] % ckpt == 0)
        append(folder, row)

    out.mkdir(parents=True, exist_ok=True)
    log(step=None, event="start")
    rundir.append_metrics = append_timed
    try:
        train(cfg, progress=False)
    finally:
        rundir.append_metrics = append
    snapshot(out, cfg.steps, out / "last.pt", a)
    atomic_write_text(out / DONE, json.dumps({"steps": cfg.steps, "config": cfg.to_dict()}) + "\n")


def their_epochs(a, n_train: int) -> tuple[int, int]:
    """(epochs, steps per epoch): the fewest whole epochs with at least ``a.steps`` steps."""
    per_epoch = math.ceil(n_train / a.batch_size)
    return math.ceil(a.steps / per_epoch), per_epoch


def run_theirs(a, lmbda: float, out: Path, data: Path) -> None:
    import torch

    T = compressai_train_module()  # noqa: N806 - their module
    epochs, per_epoch = their_epochs(a, len(_images(data / "train")))
    log = _timing_writer(out / TIMING)
    one_epoch = T.train_one_epoch

    def timed_epoch(model, criterion, loader, optimizer, aux_optimizer, epoch, clip):
        if epoch:  # the checkpoint after the previous epoch
            snapshot(out, epoch * per_epoch, out / "checkpoint.pth.tar", a)
        log(epoch=epoch, event="start", lr=optimizer.param_groups[0]["lr"])
        one_epoch(model, criterion, loader, optimizer, aux_optimizer, epoch, clip)
        log(epoch=epoch, event="end", steps=len(loader))

    T.train_one_epoch = timed_epoch
    out.mkdir(parents=True, exist_ok=True)
    os.chdir(out)  # it writes checkpoint.pth.tar into the working folder
    argv = ["-m", "bmshj2018-hyperprior", "-d", str(data), "-e", str(epochs),
            "-lr", "1e-4", "--aux-learning-rate", "1e-3", "-n", "0", "--lambda", str(lmbda),
            "--batch-size", str(a.batch_size), "--test-batch-size", str(a.batch_size),
            "--patch-size", str(a.crop), str(a.crop), "--seed", str(a.seed),
            "--clip_max_norm", "1.0"]
    if Path("checkpoint.pth.tar").is_file():
        argv += ["--checkpoint", "checkpoint.pth.tar"]
    torch.set_num_threads(1)
    T.main(argv)
    snapshot(out, epochs * per_epoch, out / "checkpoint.pth.tar", a)
    atomic_write_text(out / DONE, json.dumps({"steps": epochs * per_epoch, "epochs": epochs,
                                              "argv": argv}) + "\n")


# ---- speed from the timing logs ------------------------------------------------------------

def intervals(run: Path) -> list[tuple[float, float, int, float]]:
    """(t_start, t_end, steps, CPU seconds) of the timed stretches of a run: training only,
    no warm-up."""
    rows = [json.loads(s) for s in (run / TIMING).read_text().splitlines() if s.strip()]
    out = []
    if any("epoch" in r for r in rows):  # theirs: whole epochs, the first of each process skipped
        seen: set[int] = set()
        starts = {}
        for r in rows:
            if r["event"] == "start":
                starts[r["pid"]] = r
            elif r["pid"] in starts:
                if r["pid"] in seen:
                    out.append((starts[r["pid"]]["t"], r["t"], r["steps"],
                                r["cpu"] - starts[r["pid"]]["cpu"]))
                seen.add(r["pid"])
        return out
    prev = {}
    for r in rows:  # ours: log rows; skip the first after start and those after a checkpoint
        p = prev.get(r["pid"])
        if r.get("step") is not None and p is not None and p.get("step") is not None \
                and not p.get("ckpt_after") and r["step"] > p["step"]:
            out.append((p["t"], r["t"], r["step"] - p["step"], r["cpu"] - p["cpu"]))
        prev[r["pid"]] = r
    return out


def speed(run: Path, window: tuple[float, float] | None = None) -> dict:
    iv = [i for i in intervals(run) if window is None or (i[0] >= window[0] and i[1] <= window[1])]
    steps = sum(i[2] for i in iv)
    secs = sum(i[1] - i[0] for i in iv)
    cpu = sum(i[3] for i in iv)
    return {"steps_timed": steps, "seconds": round(secs, 2),
            "steps_per_s": steps / secs if secs else math.nan,
            "cpu_s_per_step": cpu / steps if steps else math.nan,
            "span": [min((i[0] for i in iv), default=math.nan),
                     max((i[1] for i in iv), default=math.nan)]}


# ---- evaluation on Kodak with real bitstreams ----------------------------------------------

def kodak_images(spec: str, count: int) -> list[tuple[str, object]]:
    from plic.datasets import resolve_data
    from plic.image_io import read_image

    recs = resolve_data(spec)[:count]
    return [(r.id, read_image(r.path)) for r in recs]


def eval_ours(run: Path, images) -> list[dict]:
    from codec.api import decode, encode, load
    from plic.quality import psnr

    model = load(run / "last.pt")
    rows = []
    for name, img in images:
        c0 = time.process_time()
        enc = encode(img, model)
        c1 = time.process_time()
        dec = decode(enc.data, model)
        c2 = time.process_time()
        rows.append({"image": name, "bytes": len(enc.data), "bpp": enc.bpp,
                     "est_bpp": enc.est_bits / (img.shape[0] * img.shape[1]),
                     "psnr": psnr(img, dec.image), "encode_s": enc.seconds,
                     "decode_s": dec.seconds, "encode_cpu_s": c1 - c0, "decode_cpu_s": c2 - c1})
    return rows


def eval_theirs(run: Path, images) -> list[dict]:
    import torch

    from plic.image_io import to_image, to_tensor
    from plic.quality import bpp, est_bpp, psnr

    compressai_train_module()
    from compressai.zoo import image_models

    net = image_models["bmshj2018-hyperprior"](quality=3)
    ck = torch.load(run / "checkpoint.pth.tar", map_location="cpu", weights_only=False)
    net.load_state_dict(ck["state_dict"])
    net.update(force=True)
    net.eval()
    torch.set_num_threads(1)
    rows = []
    for name, img in images:
        h, w = img.shape[:2]
        if h % 64 or w % 64:
            raise ValueError(f"{name}: {w}x{h} is not a multiple of 64 (Kodak is)")
        x = to_tensor(img)
        with torch.no_grad():
            t0, c0 = time.perf_counter(), time.process_time()
            code = net.compress(x)
            t1, c1 = time.perf_counter(), time.process_time()
            x_hat = net.decompress(code["strings"], code["shape"])["x_hat"]
            t2, c2 = time.perf_counter(), time.process_time()
            # the likelihood estimate (eval mode: rounded latents), beside the real file
            lik = net(x)["likelihoods"]
        est = sum(float(-torch.log2(v).sum()) for v in lik.values())
        n_bytes = sum(len(s) for strings in code["strings"] for s in strings)
        dec = to_image(x_hat)
        rows.append({"image": name, "bytes": n_bytes, "bpp": bpp(n_bytes, h, w),
                     "est_bpp": est_bpp(est, h, w), "psnr": psnr(img, dec), "encode_s": t1 - t0,
                     "decode_s": t2 - t1, "encode_cpu_s": c1 - c0, "decode_cpu_s": c2 - c1})
    return rows


def evaluate(run: Path, kind: str, a) -> dict:
    """Mean bpp / PSNR / times over Kodak, cached in ``run/kodak.json``."""
    cache = run / "kodak.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    images = kodak_images(a.kodak, a.eval_images)
    rows = eval_ours(run, images) if kind == "ours" else eval_theirs(run, images)
    from plic.quality import mean_psnr

    res = {"images": len(rows), "bpp": statistics.mean(r["bpp"] for r in rows),
           "psnr": mean_psnr(r["psnr"] for r in rows),
           "encode_s": statistics.mean(r["encode_s"] for r in rows),
           "decode_s": statistics.mean(r["decode_s"] for r in rows),
           "encode_cpu_s": statistics.mean(r["encode_cpu_s"] for r in rows),
           "decode_cpu_s": statistics.mean(r["decode_cpu_s"] for r in rows), "per_image": rows}
    res["est_bpp"] = statistics.mean(r["est_bpp"] for r in rows)
    atomic_write_text(cache, json.dumps(res, indent=1) + "\n")
    return res

"""Rate-distortion plots (PSNR, MS-SSIM, LPIPS against bpp) and the side-by-side crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from plic.image_io import read_image, write_png

# published Kodak curves drawn dashed (stems in ../shared/anchors/rd_kodak)
KODAK_ANCHORS = ("bpg_444_x265_ycbcr", "vtm", "compressai-bmshj2018-hyperprior_mse_cpu",
                 "compressai-mbt2018_mse_cpu", "compressai-cheng2020-anchor_mse_cpu",
                 "paper-elic2022_mse")
PANELS = (("psnr", "PSNR (dB, RGB)", "rd_psnr.png"), ("ms_ssim", "MS-SSIM (RGB)",
                                                      "rd_ms_ssim.png"),
          ("lpips_alex", "LPIPS-Alex (lower is better)", "rd_lpips.png"),
          ("dists", "DISTS (lower is better)", "rd_dists.png"))


def rd_plots(summary: list[dict], out: Path, anchors: bool, title: str = "") -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from plic import rd

    anchor_curves = []
    if anchors and rd.anchors_dir() is not None:
        for stem in KODAK_ANCHORS:
            try:
                anchor_curves.append(rd.load_anchor(stem))
            except (FileNotFoundError, KeyError, ValueError):
                pass
    methods = list(dict.fromkeys(s["method"] for s in summary))
    bpps = [s["bpp"] for s in summary if s["bpp"]]
    xmax = max(bpps) * 1.3 if bpps else 1.0
    paths = []
    for col, label, fname in PANELS:
        if not any(s[col] is not None for s in summary):
            continue  # a metric left out of this run
        fig, ax = plt.subplots(figsize=(6.4, 4.6))
        for a in anchor_curves:
            ys = a.psnr if col == "psnr" else a.ms_ssim if col == "ms_ssim" else []
            pts = [(b, y) for b, y in zip(a.bpp, ys) if b <= xmax]
            if len(pts) >= 2:
                ax.plot(*zip(*pts), "--", lw=1, alpha=0.7, label=f"{a.name} (published)")
        partial = False
        for m in methods:
            pts = sorted((s["bpp"], s[col], s["n_images"] < s["n_set"]) for s in summary
                         if s["method"] == m and s["bpp"] and s[col] is not None)
            if not pts:
                continue
            ours = any(s["kind"] == "ours" for s in summary if s["method"] == m)
            (line,) = ax.plot([p[0] for p in pts], [p[1] for p in pts],
                              "-*" if ours else "-o", ms=12 if ours else 4,
                              lw=2 if ours else 1.2, label=m + (" (ours)" if ours else ""))
            # a point averaged over only the images that reached the target: hollow
            for x, y, short in pts:
                if short:
                    partial = True
                    ax.plot([x], [y], "*" if ours else "o", ms=(12 if ours else 4) + 3,
                            mfc="white", mec=line.get_color(), zorder=3)
        if partial:
            ax.plot([], [], "o", mfc="white", mec="gray",
                    label="hollow: averaged over the images that reached the target")
        ax.set_xlabel("bits per pixel (measured on the files)")
        ax.set_ylabel(label)
        ax.set_xlim(0, xmax)
        ax.grid(alpha=0.3)
        ax.set_title(title, fontsize=9)
        # below the axes, so that no curve hides behind it
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2,
                  frameon=False)
        p = out / fname
        fig.savefig(p, dpi=110, bbox_inches="tight")
        plt.close(fig)
        paths.append(p)
    return paths


def busiest_box(ref: np.ndarray, decoded: list[np.ndarray], size: int, step: int = 16
                ) -> tuple[int, int]:
    """(y, x) of the ``size`` x ``size`` window where the decoded images differ most from the
    reference (squared error summed over them): where the codecs' differences show."""
    h, w = ref.shape[:2]
    err = np.zeros((h, w), np.float64)
    r = ref.astype(np.float64)
    for d in decoded:
        err += ((d.astype(np.float64) - r) ** 2).sum(2)
    ii = np.pad(err.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    ys, xs = np.arange(0, h - size + 1, step), np.arange(0, w - size + 1, step)
    if ys[-1] != h - size:
        ys = np.append(ys, h - size)
    if xs[-1] != w - size:
        xs = np.append(xs, w - size)
    win = (ii[ys[:, None] + size, xs[None, :] + size] - ii[ys[:, None], xs[None, :] + size]
           - ii[ys[:, None] + size, xs[None, :]] + ii[ys[:, None], xs[None, :]])
    iy, ix = np.unravel_index(int(np.argmax(win)), win.shape)
    return int(ys[iy]), int(xs[ix])


def crops(rows: list[dict], records, out: Path, n_images: int = 2, size: int = 256) -> list:
    """Per image: one ``size`` crop, where the codecs differ most (``busiest_box``), cut from the
    original and from every decoded image; per target, the tiles to show side by side at 1:1."""
    from .encode import STATUS_OK

    figs = []
    d = out / "crops"
    for rec in list(records)[:n_images]:
        mine = [r for r in rows if r["image_id"] == rec.id and r["status"] == STATUS_OK]
        if not mine:
            continue
        ref = read_image(rec.path)
        s = min(size, *ref.shape[:2])
        decoded = {id(r): read_image(r["decoded_path"]) for r in mine}
        y, x = busiest_box(ref, list(decoded.values()), s)
        box = (slice(y, y + s), slice(x, x + s))
        ref_p = write_png(d / f"{rec.id}_original.png", ref[box])
        for target in sorted({r["target_bpp"] for r in mine}):
            tiles = [{"label": "original", "path": ref_p.relative_to(out).as_posix(),
                      "bpp": None}]
            for r in (r for r in mine if r["target_bpp"] == target):
                safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in r["method"])
                p = write_png(d / f"{rec.id}_{target:g}_{safe}.png", decoded[id(r)][box])
                tiles.append({"label": r["method"], "kind": r["kind"],
                              "path": p.relative_to(out).as_posix(), "bpp": r["bpp"],
                              "psnr": r.get("psnr"), "lpips": r.get("lpips_alex"),
                              "dists": r.get("dists"),
                              "trained_with": r.get("trained_with", "")})
            figs.append({"image": rec.id, "target": target, "size": s, "box": (x, y),
                         "full": (ref.shape[1], ref.shape[0]), "tiles": tiles})
    return figs

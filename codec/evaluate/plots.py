"""Rate-distortion plots (PSNR, MS-SSIM, LPIPS against bpp) and the side-by-side crops."""

from __future__ import annotations

from pathlib import Path

from codec.image_io import center_crop, read_image, write_png

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

    from codec import rd

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
        ax.legend(fontsize=7)
        fig.tight_layout()
        p = out / fname
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(p)
    return paths


def crops(rows: list[dict], records, out: Path, n_images: int = 2, size: int = 512) -> list:
    """512x512 centre crops: per image and target, the original then every method."""
    from .encode import STATUS_OK

    figs = []
    d = out / "crops"
    for rec in list(records)[:n_images]:
        ref = read_image(rec.path)
        s = min(size, *ref.shape[:2])
        ref_p = write_png(d / f"{rec.id}_original.png", center_crop(ref, s))
        for target in sorted({r["target_bpp"] for r in rows}):
            tiles = [{"label": "original", "path": ref_p.relative_to(out).as_posix(),
                      "bpp": None}]
            for r in rows:
                if (r["image_id"] != rec.id or r["target_bpp"] != target
                        or r["status"] != STATUS_OK):
                    continue
                img = read_image(r["decoded_path"])
                safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in r["method"])
                p = write_png(d / f"{rec.id}_{target:g}_{safe}.png", center_crop(img, s))
                tiles.append({"label": r["method"], "path": p.relative_to(out).as_posix(),
                              "bpp": r["bpp"], "psnr": r.get("psnr"),
                              "lpips": r.get("lpips_alex")})
            if len(tiles) > 1:
                figs.append({"image": rec.id, "target": target, "size": s, "tiles": tiles})
    return figs

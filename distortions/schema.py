"""The ``runs/distortions/index.csv`` contract (owned here; see docs/CONTRACTS.md)."""

INDEX_COLUMNS = [
    "dist_id", "ref_id", "ref_path", "codec", "codec_version", "param", "target_bpp", "bpp",
    "psnr", "ms_ssim", "path", "bitstream_path", "sha256", "width", "height",
    "crop_x", "crop_y", "crop_size",
]
INDEX_ID = "dist_id"

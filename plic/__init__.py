"""plic's ground floor: what every package shares, importing nothing of the project's own.

``paths`` (where things live), ``fsio`` (hashes, atomic writes), ``tables`` (the CSV contracts),
``image_io`` (uint8 RGB ``(H, W, 3)`` in and out), ``quality`` (PSNR, MS-SSIM, bpp: one home per
formula), ``datasets`` (manifests, ``--data``), ``checkpoint`` (the checkpoint file contract),
``rd`` (published RD anchors, BD-rate) and ``config_args`` (config dataclasses as command-line
options). Every other package stands on this one (docs/CONTRACTS.md).
"""

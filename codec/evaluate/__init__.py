"""Evaluation: our codecs and the classic ones on a data set, at matched real bitrates.

    python -m codec.evaluate --model CKPT [--model CKPT ...] --data kodak [--target-bpp 0.15,0.3]

Per image and target: a real file at or under the target (ours through ``codec.api``'s rate
control; the classic codecs through the ``distortions`` backends, their rate search and their
cache), decoded, then bpp (from the file), PSNR, MS-SSIM, LPIPS-Alex/VGG/Squeeze, DISTS and the
fitted metric; over the set, FID and KID on 256x256 patches (``codec.evaluate.fid``). Writes
``results.csv`` (per image), ``summary.csv`` and ``results.json`` (per method and target),
``table.md`` (laid out like HiFiC's Table 1), rate-distortion plots, BD-rates against HEVC, and
``report.html`` with side-by-side 512x512 centre crops.
"""

from .measure import Measurer
from .run import EvalConfig, evaluate

__all__ = ["EvalConfig", "Measurer", "evaluate"]

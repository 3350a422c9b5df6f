"""perceptual_metric: LPIPS-style metrics with offline ImageNet trunks, fitted on 2AFC labels.

    d = perceptual_metric.official("alex")       # LPIPS v0.1
    d = perceptual_metric.load("runs/metric.pt")  # fitted on the study's labels
    dist = d(x, y)  # float N x 3 x H x W in [0,1] -> (N,)
"""

from .lpips_model import LPIPS, InputError
from .official import load, official

__all__ = ["LPIPS", "InputError", "load", "official"]

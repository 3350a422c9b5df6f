"""perceptual_metric: LPIPS-style metrics with offline ImageNet trunks, fitted on 2AFC labels.

    d = perceptual_metric.official("alex")       # LPIPS v0.1
    d = perceptual_metric.load("runs/metric.pt")  # fitted on the study's labels
    d = perceptual_metric.dists()                 # DISTS (Ding et al. 2020), never trained on here
    dist = d(x, y)  # float N x 3 x H x W in [0,1] -> (N,)
"""

from .dists import DISTS, dists
from .lpips_model import LPIPS, InputError
from .official import load, official

__all__ = ["DISTS", "LPIPS", "InputError", "dists", "load", "official"]

"""perceptual_metric: LPIPS-style metrics with offline ImageNet trunks, fitted on 2AFC labels."""

"""Training the HEVC post-decoder (``codec.postdecode``): ``python -m codec.train.postdecode``.

Modules: ``pairs`` (the cache of BSDS500 images and their ``hevc-bpgcfg`` decodes at the QPs
around the tracks), ``config`` (the options), ``loop`` (``train(cfg)``, on ``codec.train``'s
losses, discriminator and run directory), ``ship`` (a run's checkpoint to ship).
"""

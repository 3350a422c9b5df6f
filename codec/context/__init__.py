"""The context model (issue 5): PixelCNN++-lite over the latent, wavefront (parallel)
autoregressive coding, and integer-exact entropy parameters. See docs/CONTEXT.md.

Modules: ``intmath`` (fixed-point arithmetic), ``intnet`` (integer-exact hyper decoder),
``masked`` (the float model that is trained), ``step`` (THE step function and the integer
discretisation of its output), ``wavefront`` (schedules, the coding loop shared by encoder and
decoders, the stream decoder), ``latent`` (the model mixin and the ``wavefront`` latent coder).
Its benchmark: ``python -m benchmarks.context_model``.
"""

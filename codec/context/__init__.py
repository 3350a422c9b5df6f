"""The context model (issue 5): PixelCNN++-lite over the latent, wavefront (parallel)
autoregressive coding, and integer-exact entropy parameters.

Modules: ``intmath`` (fixed-point layers), ``masked`` (the float model that is trained),
``step`` (THE step function and parameter discretisation), ``wavefront`` (schedules, the shared
coding loop, the stream decoder).
"""

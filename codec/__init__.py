"""plic codec package.

Two layers live here (see docs/CONTRACTS.md):

* the codec *engine* (everything except the top): models, layers, entropy coding, the context
  model and its kernels, bitstreams, rate control, ``codec.compress``/``decompress``. It imports
  only the ground package ``plic`` (paths, tables, image I/O, quality formulas, data sets,
  checkpoints);
* the *top* (the packages ``codec.train`` and ``codec.evaluate``), which may import every
  package. The codec's benchmarks are in the top-level ``benchmarks`` package.
"""

__version__ = "0.1.0"

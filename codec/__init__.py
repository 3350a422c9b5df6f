"""plic codec package.

Two layers live here (see docs/CONTRACTS.md):

* the codec *core* (everything except ``codec.train*`` and ``codec.evaluate*``): image I/O,
  quality formulas, datasets, tables, checkpoints, models, entropy coding, bitstreams. It imports
  no other package of the project;
* the *top* (``codec.train``, ``codec.evaluate``), which may import every package.
"""

__version__ = "0.1.0"

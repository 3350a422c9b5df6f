"""``python -m codec.datasets``: the data-set command (list, verify, fetch, make-manifest, crop).

Its code is ``plic.datasets`` (the ground package every package reads data sets with); this name
is the documented command.
"""

from plic.datasets import main

if __name__ == "__main__":
    raise SystemExit(main())

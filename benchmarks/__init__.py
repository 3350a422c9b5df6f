"""Every benchmark of the project, one module each: ``python -m benchmarks.NAME --help``.

The roof of the layering (docs/ARCHITECTURE.md): a benchmark may import any package, no package
imports a benchmark. ``make bench`` (``scripts/bench.sh``) runs them one after the other; each
writes its table to ``runs/bench/`` (Markdown and JSON), with the machine's load average beside
its times. Run from a checkout: the package is not installed with the library.
"""

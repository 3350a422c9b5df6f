"""``python -m mturk.aggregate``: a 2AFC study's labels.csv from its verified judgments.

A thin entry point kept for the command users know: the command and its library live in
``mturk.analysis.aggregate`` (import from there); ``--help`` says more.
"""

import sys

from .analysis.aggregate import main

if __name__ == "__main__":
    sys.exit(main())

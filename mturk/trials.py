"""``python -m mturk.trials``: a study's trials.csv (2AFC pairs, or ACR/DSIS ratings).

A thin entry point kept for the command users know: the command and its library live in
``mturk.design.trials`` (import from there); ``--help`` says more.
"""

import sys

from .design.trials import main

if __name__ == "__main__":
    sys.exit(main())

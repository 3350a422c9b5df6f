"""``python -m mturk.mos``: a rating study's mos.csv (MOS, DMOS, SUREAL) after screening.

A thin entry point kept for the command users know: the command and its library live in
``mturk.analysis.mos`` (import from there); ``--help`` says more.
"""

import sys

from .analysis.mos import main

if __name__ == "__main__":
    sys.exit(main())

"""``python -m mturk.publish``: a study's batches posted as HITs on MTurk.

A thin entry point kept for the command users know: the command and its library live in
``mturk.market.publish`` (import from there); ``--help`` says more.
"""

import sys

from .market.publish import main

if __name__ == "__main__":
    sys.exit(main())

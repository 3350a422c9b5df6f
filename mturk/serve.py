"""``python -m mturk.serve``: the study server (HIT pages, images, submissions, lab links).

A thin entry point kept for the command users know: the command and its library live in
``mturk.web.serve`` (import from there); ``--help`` says more.
"""

import sys

from .web.serve import main

if __name__ == "__main__":
    sys.exit(main())

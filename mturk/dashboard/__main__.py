"""``python -m mturk.dashboard --db DB``: the requester's dashboard (``mturk.dashboard.main``)."""

import sys

from .main import main

sys.exit(main())

import sys

from .. import fastpath
from .cli import main

fastpath.apply_thread_env()  # OpenMP reads it once, when torch loads (the loop imports torch)
sys.exit(main())

"""Which pairs a study asks next: the acquisition rule of a study in rounds (``acquire``) and
the rounds' layout and merged labels (``study_rounds``). Imports only ``mturk.schema``."""

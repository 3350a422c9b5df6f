"""The requester's dashboard: ``python -m mturk.dashboard --db DB`` (``main``).

A Flask app of its own (``app``), separate from the workers' HIT server (``mturk.web``): the
study's progress and spend, its workers' quality, its results, and the requester's audited
actions through a marketplace backend (``actions``). The figures are ``mturk.analysis``'s, from
the database's SQL aggregates (``figures``, ``ratings``; ``mturk.store.dashboard_queries``).
"""

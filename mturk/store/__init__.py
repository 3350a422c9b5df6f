"""The study database: ``StudyDB`` (``study_db``) with its record mixins (``assignment_records``,
``market_records``, ``rating_records``, ``trust_records``), what they share (``common``: modes,
statuses, the typed errors, timestamps, money) and the schema as ordered migrations
(``migrations``). Callers never write SQL: they call ``StudyDB``."""

"""What the app knows of its study, loaded once by ``create_app``: the trials by id and by batch,
the design, the database and its keys, and what every route derives from them (a scope's page
order and ids, image URLs, an assignment's stored answers). The blueprints reach it through
``loaded()`` (``current_app.extensions["plic_study"]``)."""

from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path

from flask import current_app

from plic.tables import read_table, resolve_path

from ..design.rating import RATING_DESIGNS
from ..design.study import study_design
from ..schema import TRIALS_COLUMNS, TRIALS_ID
from ..store.study_db import StudyDB
from ..tokens import VIEWS
from .page import image_size, view_source
from .rating_page import stored_ratings
from .twoafc_page import stored_answers


class LoadedStudy:
    """The study of ``cfg`` (an ``AppConfig``): its trials loaded into the database, every
    image checked at start (a missing or unreadable one fails here, not on a worker's page)."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.trials_path = Path(cfg.trials)
        self.trials = read_table(self.trials_path, TRIALS_COLUMNS, TRIALS_ID).to_dict("records")
        self.design = study_design(self.trials_path)  # 2afc, or acr/dsis ratings (design.rating)
        self.rating = self.design in RATING_DESIGNS
        self.db = StudyDB(cfg.db, timeout=getattr(cfg, "db_timeout_s", 30.0))
        self.db.load_trials(self.trials, study_id=cfg.study_id,
                            trials_csv=str(self.trials_path.resolve()))
        self.keys = self.db.keys()
        self.by_id = {t["trial_id"]: t for t in self.trials}
        self.by_batch: dict[str, list[dict]] = {}
        for t in self.trials:
            self.by_batch.setdefault(t["batch_id"], []).append(t)
        # a trial's files never move while the study is served: resolve each path once (the
        # realpath calls were a fifth of a page's time, python -m benchmarks.study_server
        # --profile)
        self.resolve = lru_cache(maxsize=65536)(self._resolve)
        for t in self.trials:
            for v in VIEWS:
                image_size(str(self.resolve(view_source(t, v)[1])))
        self.order = lru_cache(maxsize=8192)(self._order)

    def _resolve(self, p: str) -> Path:
        return resolve_path(p, self.trials_path)

    def size(self, t) -> tuple[int, int]:
        return image_size(str(self.resolve(t["ref_path"])))

    def _order(self, batch_id: str, scope: str) -> tuple[str, ...]:
        return tuple(t["trial_id"] for t in self.keys.page_order(scope, self.by_batch[batch_id]))

    def page_ids(self, batch_id: str, scope: str) -> dict[str, str]:
        return self.keys.page_ids(scope, [t["trial_id"] for t in self.by_batch[batch_id]])

    def img_url(self, batch_id: str, scope: str):
        expires = int(time.time()) + self.cfg.image_ttl_s
        return lambda pos, view, t: self.keys.image_path(batch_id, scope, 3 * pos + view, expires)

    def stored_of(self, asg: dict | None, batch_id: str, scope: str) -> dict | None:
        """The answers the database holds for an assignment, as its page shows them."""
        if not asg or not asg.get("answers_sha"):
            return None
        rows = (self.db.ratings if self.rating else self.db.judgments)(asg["assignment_id"])
        by_trial = {r["trial_id"]: r for r in rows}
        ordered = [by_trial[t] for t in self.order(batch_id, scope) if t in by_trial]
        answers = (stored_ratings if self.rating else stored_answers)(ordered, self.keys, scope)
        return dict(answers=answers, saved_at=asg["submitted_at"])


def loaded() -> LoadedStudy:
    """The study of the app handling this request."""
    return current_app.extensions["plic_study"]

"""What the server says about itself (blueprint ``health``): ``GET /health`` (JSON: schema
version, trials, design, batches, local, simulated, and ``worker``: the serving process's id, so
that a check can see which of ``mturk.serve --workers N``'s processes answered) and ``GET /`` (a
hint where the pages are)."""

from __future__ import annotations

import os

from flask import Blueprint, jsonify

from .loaded_study import loaded

bp = Blueprint("health", __name__)

TEXT = {"Content-Type": "text/plain; charset=utf-8"}


@bp.get("/health")
def health():
    s = loaded()
    return jsonify(ok=True, schema_version=s.db.schema_version(), trials=len(s.trials),
                   design=s.design,
                   batches=len(s.by_batch), local=s.cfg.local, simulated=s.cfg.simulated,
                   worker=os.getpid())


@bp.get("/")
def index():
    if loaded().cfg.local:
        return "plic lab study: open your participant link (/local/start?p=...).\n", 200, TEXT
    return "plic 2AFC study server: HIT pages are at /task (see mturk.web.app).\n", 200, TEXT

"""The files a page loads (blueprint ``files``): images by keyed, expiring URL only
(``GET /img/<batch>/<scope>/<expiry>/<k>-<mac>.png``: nothing else serves images, and no path ever
appears in a URL) and the page's own assets (``GET /static/<name>``: regular files directly in
``STATIC``, symbolic links never followed)."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from flask import Blueprint, abort, current_app, send_file

from ..tokens import VIEWS
from .loaded_study import loaded
from .page import STATIC, view_source

bp = Blueprint("files", __name__)


def static_files() -> dict[str, Path]:
    """The page's assets: regular files directly in STATIC, never symbolic links."""
    out = {}
    for p in STATIC.iterdir():
        st = os.lstat(p)
        if stat.S_ISREG(st.st_mode):
            out[p.name] = p
    return out


@bp.get("/img/<batch>/<scope>/<expires>/<name>")
def image(batch: str, scope: str, expires: str, name: str):
    s = loaded()
    if batch not in s.by_batch:
        abort(404)
    k = s.keys.check_image(batch, scope, expires, name, time.time())
    if k is None or k // 3 >= len(s.by_batch[batch]):
        abort(404)
    t = s.by_id[s.order(batch, scope)[k // 3]]
    resp = send_file(s.resolve(view_source(t, VIEWS[k % 3])[1]), mimetype="image/png",
                     etag=False, last_modified=None, conditional=False)
    resp.headers["Cache-Control"] = "private, max-age=3600"
    return resp


@bp.get("/static/<name>")
def static_file(name: str):
    p = current_app.extensions["plic_statics"].get(name)
    if p is None or not stat.S_ISREG(os.lstat(p).st_mode):
        abort(404)
    return send_file(p, max_age=300)

"""A batch as MTurk's HTMLQuestion: the page a worker sees inside MTurk's own frame, assets inlined,
images uploaded beside it. A 2AFC batch gets ``mturk.web.twoafc_page``'s page, an ACR/DSIS batch
``mturk.web.rating_page``'s; this module sits above both so neither imports the other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from ..design.study import rating_design
from ..tokens import VIEWS, Keys, html_scope
from ..web.page import MTURK_SUBMIT_HOSTS, image_size, view_source
from ..web.rating_page import render_rating_page
from ..web.twoafc_page import render_page


def html_image_files(trials: Sequence[Mapping], keys: Keys, batch_id: str,
                     resolve) -> dict[str, Path]:
    """``{name: file}`` to upload for a batch's HTMLQuestion (``resolve(path_in_table)``)."""
    out = {}
    for t in trials:
        for v in VIEWS:
            out[keys.static_name("html", batch_id, t["trial_id"], v)] = \
                Path(resolve(view_source(t, v)[1]))
    return out


def render_html_question(trials: Sequence[Mapping], keys: Keys, batch_id: str,
                         image_base_url: str, resolve, sandbox: bool = True) -> str:
    """The page as HTMLQuestion content: assets inlined, images under ``image_base_url``.

    MTurk opens it with ``assignmentId``, ``hitId``, ``workerId`` and ``turkSubmitTo`` in the
    query string; the page reads them there (preview when there is no assignment), and posts
    straight to ``{turkSubmitTo}/mturk/externalSubmit`` (answers reach the database through
    ``collect``). Upload ``html_image_files(...)`` to ``image_base_url``.
    """
    base = image_base_url.rstrip("/")
    if not base.startswith("https://"):
        raise ValueError("image_base_url must be https:// (MTurk pages are served over HTTPS)")
    host = MTURK_SUBMIT_HOSTS[1] if sandbox else MTURK_SUBMIT_HOSTS[0]

    def url(pos: int, view: int, t: Mapping) -> str:
        return f"{base}/{keys.static_name('html', batch_id, t['trial_id'], VIEWS[view])}"

    design = rating_design(t["trial_id"] for t in trials)      # ACR/DSIS: the rating page
    render = (lambda *a, **k: render_rating_page(design, *a, **k)) if design else render_page
    return render(trials, mode="htmlquestion", keys=keys, scope=html_scope(batch_id),
                  image_url=url, size=lambda t: image_size(str(resolve(t["ref_path"]))),
                  submit_to=host, inline_assets=True)

"""A lab study answered by a simulated crowd inside this process: the real study app
(``mturk.web.app``) on werkzeug's threaded server (``mturk.web.serve``) on a free loopback port,
the crowd of ``mturk.sim.crowd`` answering it over HTTP. The reports of both designs
(``mturk.sim.twoafc_report``, ``mturk.sim.rating_report``) measure their crowds this way."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from ..web.app import AppConfig, create_app
from ..web.serve import make_study_server
from .crowd import SimConfig, run_crowd


def simulated_study(trials_csv: Path, study: Path, workers: int, failed: str, *,
                    concurrency: int = 4, fresh: bool = True, **sim):
    """Answer a lab study of ``trials_csv`` (in ``study``; ``fresh``: its database deleted
    first) by ``workers`` simulated participants (``mturk.sim.crowd.run_crowd``; ``sim``: the
    rest of its ``SimConfig``) through the study server on a free loopback port. Returns
    (database, ``run_crowd``'s result); a crowd that met errors raises ``RuntimeError`` ("the
    simulated crowd ``failed``: ...") with the database's connections closed."""
    if fresh:
        for f in study.glob("judgments.sqlite*"):     # a fresh study each run
            f.unlink()
    app = create_app(AppConfig(trials=str(trials_csv), db=str(study / "judgments.sqlite"),
                               local=True, simulated=True))
    db = app.extensions["plic_db"]
    links = study / "participants.txt"
    links.write_text("".join(db.keys().participant_token(i) + "\n"
                             for i in range(1, workers + 1)))
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    srv = make_study_server("127.0.0.1", 0, app)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        result = run_crowd(SimConfig(url=f"http://127.0.0.1:{srv.server_port}",
                                     trials=str(trials_csv), participants=str(links),
                                     workers=workers, concurrency=concurrency, **sim))
    except BaseException:
        db.dispose()
        raise
    finally:
        srv.shutdown()
    if result["failures"]:
        db.dispose()
        raise RuntimeError(f"the simulated crowd {failed}: {result['failures'][:3]}")
    return db, result

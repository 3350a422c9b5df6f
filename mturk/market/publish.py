"""Put a study's batches on Mechanical Turk: ``python -m mturk.publish --sandbox``.

One HIT per batch of trials (``mturk.store.study_db``), all sharing one HIT type. In order:

1. print the cost (reward x assignments x HITs + MTurk's fee, ``mturk.market.cost``) and the
   balance;
2. create or reuse, by name, the qualification test (a 2AFC quiz built from sentinel trials, as
   QuestionForm XML with an answer key; images at ``--image-base-url``) and the soft-block
   qualification (``mturk.market.collect`` grants it to repeat spammers; HITs require that it not
   exist);
3. the HIT type: reward, durations, requirements (approval rate, number approved, optional locale,
   optional Masters, whose id differs between sandbox and live);
4. one HIT per batch, as ExternalQuestion (the study server's HTTPS URL) or HTMLQuestion, each with
   a ``UniqueRequestToken`` derived from (mode, batch, round). A rerun after a crash sends the same
   tokens: MTurk answers "already exists" with the HIT it made, which counts as success, and batches
   whose HIT the database already holds are skipped, so no HIT is ever created twice (MTurk keeps
   tokens 24 hours; the database is the lasting record).

Before any call, every HIT's Question is built and checked against MTurk's 64 KB limit, and the
HIT description gets the window size the page needs to show the images at full size
(``mturk.web.twoafc_page.min_window``, from the trial images; ``--min-window``).

Every id goes into the database with its mode. ``--dry-run`` prints the plan, the first HIT's
Question XML and the HIT type's requirements, and calls nothing.

Images on a public host (the quiz, and the page of ``--question html``) are named by keyed
hashes, one name per use (``mturk.tokens``): ``--export-images DIR`` copies them into DIR under
those names, to upload to ``--image-base-url``; it calls nothing else.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from plic.cli import CliError, command, parser
from plic.config_args import add_config_args, config_from_args, option
from plic.image_io import ImageReadError

from ..tokens import VIEWS
from ..web.page import image_size
from ..web.twoafc_page import describe_min_window
from . import HitTypeSpec, Market, MarketError, QualificationRequirement
from .config import (
    add_market_arguments,
    check_live,
    market_from_args,
    mode_of,
    open_db,
)
from .cost import CostEstimate
from .html_question import html_image_files, render_html_question
from .questions import (
    QuizItem,
    external_question,
    html_question,
    quiz_answer_key,
    quiz_question_form,
)

# System qualification type ids (the same in sandbox and live, except Masters).
PERCENT_APPROVED = "000000000000000000L0"
NUMBER_APPROVED = "00000000000000000040"
LOCALE = "00000000000000000071"
MASTERS = {"sandbox": "2ARFPLSP75KLA8M8DH1HTEQVJT3SY6", "live": "2F1QJWKUDD8XADTFD2Q0G6UTO95ALH"}
TOKEN_PREFIX = "plic"


@dataclass
class PublishConfig:
    """What to publish, for how much, and to whom."""

    batches: list = option([], "batch ids to publish (default: every batch in the database)")
    round: int = option(1, "publishing round: a new round posts batches again with new tokens")
    question: str = option("external", "external (ExternalQuestion: the study server's page) or "
                                       "html (HTMLQuestion: MTurk hosts the page, images at "
                                       "--image-base-url)", choices=("external", "html"))
    external_url: str = option("", "HTTPS URL of the study server's HIT page, e.g. "
                                   "https://study.example.org/hit ({batch_id}, if present, is "
                                   "replaced)")
    image_base_url: str = option("", "public HTTPS base URL holding the trial images as "
                                     "<token>.png (mturk.market.html_question.html_image_files): "
                                     "for the quiz and HTMLQuestion")
    frame_height: int = option(0, "frame height in pixels (0: fit the window)")
    min_window: str = option("auto", "the window size the HIT description asks for: auto (from "
                                     "the trial images), WxH, or none")
    export_images: str = option("", "copy the quiz's and the HTMLQuestion's images into this "
                                    "folder under their public names, then stop")
    title: str = option("Which image looks closer to the original?", "HIT title workers see")
    description: str = option(
        "Compare pairs of compressed images with the original and pick the closer one (about 5 "
        "minutes).", "HIT description workers see")
    keywords: str = option("image, comparison, quality, perception", "HIT keywords")
    reward: str = option("0.50", "reward per assignment in USD")
    assignments: int = option(3, "assignments (distinct workers) per HIT")
    lifetime_h: float = option(72.0, "hours a HIT stays on the marketplace")
    assignment_duration_min: int = option(30, "minutes a worker has to finish once accepted")
    auto_approval_delay_h: float = option(72.0, "hours until MTurk approves unreviewed work itself")
    min_approval_rate: int = option(95, "required percent of a worker's past work approved (0: "
                                        "off)")
    min_approved: int = option(500, "required number of a worker's approved HITs (0: off)")
    locale: str = option("", "comma-separated country codes workers must be in, e.g. US,CA")
    masters: bool = option(False, "require the Masters qualification")
    quiz_name: str = option("plic-2afc-quiz-v1", "name of the qualification test (reused by name)")
    quiz: bool = option(True, "require the qualification test (needs --image-base-url)")
    quiz_items: int = option(5, "quiz questions, taken from the sentinel trials")
    quiz_min_score: int = option(80, "percent correct the quiz requires")
    quiz_retry_h: float = option(24.0, "hours before a worker may retake the quiz")
    block_name: str = option("plic-soft-block-v1", "name of the soft-block qualification")
    dry_run: bool = option(False, "print what would happen and call nothing")


def hit_token(mode: str, batch_id: str, rnd: int) -> str:
    """The UniqueRequestToken of a batch's HIT: stable across reruns, at most 64 characters."""
    raw = f"{TOKEN_PREFIX}-{mode}-r{rnd}-{batch_id}"
    if len(raw) <= 64:
        return raw
    return f"{TOKEN_PREFIX}-{mode}-r{rnd}-" + hashlib.sha256(batch_id.encode()).hexdigest()[:40]


def resolver(db):
    """Path of a trials.csv path (they are relative to the study's trials.csv)."""
    from plic.tables import resolve_path

    base = db.trials_csv_path()
    return (lambda p: resolve_path(p, base)) if base else Path


def quiz_items_from_trials(db, n: int) -> list[QuizItem]:
    """The quiz: the first ``n`` sentinel trials (by id), shown as the HIT page would show them,
    under keyed image names (``mturk.tokens``: the near-lossless side is not the reference's
    file, and no name is shared with another question or page)."""
    keys = db.keys()
    picked = []
    for b in db.batch_ids():
        for t in db.batch_trials(b):
            if t["kind"] == "sentinel" and t["expected"] in ("a", "b"):
                picked.append(t)
    picked.sort(key=lambda t: t["trial_id"])
    items = []
    for i, t in enumerate(picked[:n], 1):
        name = {v: keys.static_name("quiz", "quiz", t["trial_id"], v) for v in VIEWS}
        correct = "left" if t["expected"] == t["left"] else "right"
        items.append(QuizItem(f"q{i}", name["ref"], name["left"], name["right"], correct))
    return items


def quiz_files(db, n: int) -> dict[str, Path]:
    """``{public name: file}`` of the quiz's images."""
    from ..web.page import view_source

    keys, resolve, out = db.keys(), resolver(db), {}
    picked = sorted((t for b in db.batch_ids() for t in db.batch_trials(b)
                     if t["kind"] == "sentinel" and t["expected"] in ("a", "b")),
                    key=lambda t: t["trial_id"])[:n]
    for t in picked:
        for v in VIEWS:
            out[keys.static_name("quiz", "quiz", t["trial_id"], v)] = resolve(view_source(t, v)[1])
    return out


def export_images(cfg: PublishConfig, db, batches, out_dir, out=print) -> int:
    """Copy the public images (quiz, and HTMLQuestion pages) into ``out_dir``; the count."""
    files = quiz_files(db, cfg.quiz_items) if cfg.quiz else {}
    if cfg.question == "html":
        for b in batches:
            files.update(html_image_files(db.batch_trials(b), db.keys(), b, resolver(db)))
    dest = Path(out_dir)
    dest.mkdir(parents=True, exist_ok=True)
    for name, src in sorted(files.items()):
        shutil.copyfile(src, dest / name)
    out(f"exported {len(files)} images to {dest}: upload them to the --image-base-url folder")
    return len(files)


def window_sentence(cfg: PublishConfig, db, batches) -> str:
    """The description's sentence on the window size the page needs ("" with --min-window none)."""
    spec = cfg.min_window.strip().lower()
    if spec == "none":
        return ""
    m = re.fullmatch(r"(\d+)x(\d+)", spec)
    if m:
        return (f"Needs a browser window at least {m.group(1)} x {m.group(2)} pixels to show the "
                "images at full size (a computer screen; phones are too small).")
    if spec != "auto":
        raise ValueError(f"--min-window must be auto, WxH or none, not {cfg.min_window!r}")
    resolve, width, height = resolver(db), 0, 0
    for b in batches:
        for t in db.batch_trials(b):
            try:
                w, h = image_size(str(resolve(t["ref_path"])))
            except ImageReadError as e:
                raise ValueError(f"cannot read the trial images to state the window size the "
                                 f"page needs ({e}); pass --min-window WxH or none") from e
            width, height = max(width, w), max(height, h)
    from ..design.study import rating_design
    from ..web.rating_page import min_window_rating

    if rating_design(t["trial_id"] for b in batches for t in db.batch_trials(b)):
        w, h = min_window_rating(width, height)          # ACR/DSIS: one view at a time
        return (f"Needs a browser window at least {w} x {h} pixels to show the images at full "
                "size.")
    return describe_min_window(width, height)


def requirements(cfg: PublishConfig, mode: str, quiz_id: str | None,
                 block_id: str | None) -> tuple[QualificationRequirement, ...]:
    reqs = []
    if cfg.min_approval_rate > 0:
        reqs.append(QualificationRequirement(PERCENT_APPROVED, "GreaterThanOrEqualTo",
                                             (cfg.min_approval_rate,)))
    if cfg.min_approved > 0:
        reqs.append(QualificationRequirement(NUMBER_APPROVED, "GreaterThanOrEqualTo",
                                             (cfg.min_approved,)))
    countries = tuple(c.strip().upper() for c in cfg.locale.split(",") if c.strip())
    if countries:
        reqs.append(QualificationRequirement(LOCALE, "In",
                                             locale_values=tuple((c, "") for c in countries)))
    if cfg.masters:
        reqs.append(QualificationRequirement(MASTERS["live" if mode == "live" else "sandbox"],
                                             "Exists"))
    if quiz_id:
        reqs.append(QualificationRequirement(quiz_id, "GreaterThanOrEqualTo",
                                             (cfg.quiz_min_score,)))
    if block_id:
        reqs.append(QualificationRequirement(block_id, "DoesNotExist",
                                             actions_guarded="DiscoverPreviewAndAccept"))
    return tuple(reqs)


def question_xml(cfg: PublishConfig, db, batch_id: str, mode: str) -> str:
    """The HIT's Question: the server's page (MTurk adds assignmentId, hitId, workerId and
    turkSubmitTo to the URL) or the page itself as HTMLQuestion."""
    if cfg.question == "html":
        if not cfg.image_base_url:
            raise ValueError("--question html needs --image-base-url")
        html = render_html_question(db.batch_trials(batch_id), db.keys(), batch_id,
                                    cfg.image_base_url, resolver(db), sandbox=mode != "live")
        return html_question(html, cfg.frame_height)
    if not cfg.external_url:
        raise ValueError("--question external needs --external-url (the study server's page)")
    return external_question(cfg.external_url.replace("{batch_id}", batch_id), cfg.frame_height)


def ensure_qualification(market: Market, db, mode: str, name: str, description: str,
                         dry_run: bool, out, **create) -> str | None:
    """The qualification type's id: from the database, else found by name, else created."""
    qid = db.get_qualification_type(name, mode)
    if qid:
        out(f"qualification {name!r}: {qid} (database)")
        return qid
    if dry_run:
        out(f"qualification {name!r}: would find or create")
        return None
    found = market.find_qualification_type(name)
    if found is None:
        try:
            found = market.create_qualification_type(name, description, **create)
            out(f"qualification {name!r}: created {found.qualification_type_id}")
        except MarketError:
            # created by a concurrent or crashed run between our lookup and now
            found = market.find_qualification_type(name)
            if found is None:
                raise
    else:
        out(f"qualification {name!r}: reusing {found.qualification_type_id}")
    db.set_qualification_type(name, mode, found.qualification_type_id)
    return found.qualification_type_id


#: what a dry run shows for a qualification it would find or create
WOULD_FIND_OR_CREATE = "(found or created at publish)"


def publish(cfg: PublishConfig, market: Market | None, db, mode: str, out=print) -> dict:
    """Publish; returns {"created": [...hit ids], "existing": [...], "skipped": [...batches]}."""
    batches = list(cfg.batches) or db.batch_ids()
    unknown = set(batches) - set(db.batch_ids())
    if unknown:
        raise ValueError(f"unknown batches: {sorted(unknown)} (load the trials first)")
    todo = [b for b in batches if db.hit_by_token(hit_token(mode, b, cfg.round)) is None]
    skipped = [b for b in batches if b not in todo]
    # everything that can be refused is built and checked before the first call
    questions = {b: question_xml(cfg, db, b, mode) for b in (todo or batches[:1])}
    quiz = None
    if cfg.quiz and cfg.image_base_url and todo:
        items = quiz_items_from_trials(db, cfg.quiz_items)
        if not items:
            raise ValueError("no sentinel trials to build the quiz from")
        quiz = (quiz_question_form(items, cfg.image_base_url), quiz_answer_key(items))
    window = window_sentence(cfg, db, todo or batches[:1])
    description = cfg.description if not window or window in cfg.description else \
        f"{cfg.description} {window}"

    est = CostEstimate(len(todo), cfg.assignments, Decimal(cfg.reward))
    out(f"mode: {mode}; {len(todo)} HITs to publish, {len(skipped)} already published")
    for line in est.summary().splitlines():
        out(line)
    if cfg.dry_run:
        out("balance: not queried (dry run)")
    else:
        balance = market.get_account_balance()
        out(f"balance: ${balance}")
        if todo and balance < est.total and mode == "live":
            raise MarketError(f"balance ${balance} is below the cost ${est.total}")
    result = {"created": [], "existing": [], "skipped": skipped, "cost": est}
    if not todo:
        return result

    quiz_id = None
    if cfg.quiz and not cfg.image_base_url:
        out("no qualification test: --image-base-url not given (or pass --no-quiz)")
    if quiz:
        quiz_id = ensure_qualification(
            market, db, mode, cfg.quiz_name, "A short quiz: pick the image closer to the original.",
            cfg.dry_run, out, keywords="image, comparison", test_xml=quiz[0],
            answer_key_xml=quiz[1], test_duration_s=20 * 60,
            retry_delay_s=int(cfg.quiz_retry_h * 3600)) or WOULD_FIND_OR_CREATE
    block_id = ensure_qualification(
        market, db, mode, cfg.block_name, "Workers whose past answers failed our checks.",
        cfg.dry_run, out) or WOULD_FIND_OR_CREATE
    spec = HitTypeSpec(cfg.title, description, Decimal(cfg.reward),
                       cfg.assignment_duration_min * 60, int(cfg.auto_approval_delay_h * 3600),
                       cfg.keywords, requirements(cfg, mode, quiz_id, block_id))
    lifetime_s = int(cfg.lifetime_h * 3600)
    if cfg.dry_run:
        _show_plan(spec, questions, todo, mode, cfg, out)
        return result
    hit_type_id = market.create_hit_type(spec)
    out(f"HIT type: {hit_type_id}")
    for b in todo:
        token = hit_token(mode, b, cfg.round)
        hit = market.create_hit(hit_type_id, questions[b], cfg.assignments, lifetime_s, token)
        expires = hit.expiration or datetime.now(timezone.utc) + timedelta(seconds=lifetime_s)
        db.add_hit(hit.hit_id, b, mode, hit_type_id=hit.hit_type_id or hit_type_id,
                   unique_request_token=token, reward=cfg.reward,
                   max_assignments=hit.max_assignments or cfg.assignments,
                   expires_at=expires.isoformat(), status=(hit.status or "assignable").lower(),
                   question=cfg.question,
                   url=cfg.external_url.replace("{batch_id}", b) if cfg.question == "external"
                   else None, assignment_duration_s=cfg.assignment_duration_min * 60)
        result["existing" if hit.existed else "created"].append(hit.hit_id)
        out(f"  batch {b}: HIT {hit.hit_id}" + (" (already existed)" if hit.existed else ""))
    return result


def _show_plan(spec: HitTypeSpec, questions: dict, todo: list, mode: str, cfg, out) -> None:
    out(f"HIT type: would create ({len(spec.requirements)} requirements)")
    out(f"  description: {spec.description}")
    for r in spec.requirements:
        vals = r.integer_values or [c for c, _ in r.locale_values]
        out(f"  requirement: {r.qualification_type_id} {r.comparator} "
            f"{' '.join(map(str, vals))} ({r.actions_guarded})".rstrip())
    for b in todo:
        out(f"  would create HIT for batch {b} (token {hit_token(mode, b, cfg.round)}, "
            f"Question {len(questions[b].encode()):,} bytes)")
    first = todo[0]
    out(f"Question XML of batch {first} (the others differ only in their batch):")
    out(questions[first])


PROG = "python -m mturk.publish"


def build_parser() -> argparse.ArgumentParser:
    p = parser(PROG, __doc__)
    add_market_arguments(p)
    add_config_args(p, PublishConfig)
    return p


@command(PROG, errors=(MarketError, OSError))
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    cfg = config_from_args(PublishConfig, args)
    db = open_db(args)
    mode = mode_of(args)
    live_error = check_live(args)
    if cfg.export_images:
        export_images(cfg, db, list(cfg.batches) or db.batch_ids(), cfg.export_images)
        return 0
    if live_error and not cfg.dry_run:
        # show what it would cost, touch nothing, then refuse
        publish(PublishConfig(**{**vars(cfg), "dry_run": True}), None, db, mode)
        raise CliError(live_error)
    market = None if cfg.dry_run else market_from_args(args, db.path)
    res = publish(cfg, market, db, mode)
    print(f"done: {len(res['created'])} created, {len(res['existing'])} found existing, "
          f"{len(res['skipped'])} already in the database")
    return 0


if __name__ == "__main__":
    sys.exit(main())

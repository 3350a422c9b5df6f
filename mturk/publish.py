"""Put a study's batches on Mechanical Turk: ``python -m mturk.publish --sandbox``.

One HIT per batch of trials (``mturk.db``), all sharing one HIT type. In order:

1. print the cost (reward x assignments x HITs + MTurk's fee, ``mturk.cost``) and the balance;
2. create or reuse, by name, the qualification test (a 2AFC quiz built from sentinel trials, as
   QuestionForm XML with an answer key; images at ``--image-base-url``) and the soft-block
   qualification (``mturk.collect`` grants it to repeat spammers; HITs require that it not exist);
3. the HIT type: reward, durations, requirements (approval rate, number approved, optional locale,
   optional Masters, whose id differs between sandbox and live);
4. one HIT per batch, as ExternalQuestion (the study server's HTTPS URL) or HTMLQuestion, each with
   a ``UniqueRequestToken`` derived from (mode, batch, round). A rerun after a crash sends the same
   tokens: MTurk answers "already exists" with the HIT it made, which counts as success, and batches
   whose HIT the database already holds are skipped, so no HIT is ever created twice (MTurk keeps
   tokens 24 hours; the database is the lasting record).

Every id goes into the database with its mode. ``--dry-run`` prints the plan and calls nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from .cost import CostEstimate
from .market import HitTypeSpec, Market, MarketError, QualificationRequirement
from .market.config import (
    add_arguments,
    add_market_arguments,
    check_live,
    eprint,
    from_args,
    market_from_args,
    mode_of,
    open_db,
    opt,
)
from .page import image_token, render_html_question
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

    batches: list = opt([], "batch ids to publish (default: every batch in the database)")
    round: int = opt(1, "publishing round: a new round posts batches again with new tokens")
    question: str = opt("external", "external (ExternalQuestion: the study server's page) or "
                        "html (HTMLQuestion: MTurk hosts the page, images at --image-base-url)",
                        choices=("external", "html"))
    external_url: str = opt("", "HTTPS URL of the study server's HIT page, e.g. "
                            "https://study.example.org/hit ({batch_id}, if present, is replaced)")
    image_base_url: str = opt("", "public HTTPS base URL holding the trial images as <token>.png "
                              "(mturk.page.image_files): for the quiz and HTMLQuestion")
    frame_height: int = opt(0, "frame height in pixels (0: fit the window)")
    title: str = opt("Which image looks closer to the original?", "HIT title workers see")
    description: str = opt("Compare pairs of compressed images with the original and pick the "
                           "closer one (about 5 minutes).", "HIT description workers see")
    keywords: str = opt("image, comparison, quality, perception", "HIT keywords")
    reward: str = opt("0.50", "reward per assignment in USD")
    assignments: int = opt(3, "assignments (distinct workers) per HIT")
    lifetime_h: float = opt(72.0, "hours a HIT stays on the marketplace")
    assignment_duration_min: int = opt(30, "minutes a worker has to finish once accepted")
    auto_approval_delay_h: float = opt(72.0, "hours until MTurk approves unreviewed work itself")
    min_approval_rate: int = opt(95, "required percent of a worker's past work approved (0: off)")
    min_approved: int = opt(500, "required number of a worker's approved HITs (0: off)")
    locale: str = opt("", "comma-separated country codes workers must be in, e.g. US,CA")
    masters: bool = opt(False, "require the Masters qualification")
    quiz_name: str = opt("plic-2afc-quiz-v1", "name of the qualification test (reused by name)")
    quiz: bool = opt(True, "require the qualification test (needs --image-base-url)")
    quiz_items: int = opt(5, "quiz questions, taken from the sentinel trials")
    quiz_min_score: int = opt(80, "percent correct the quiz requires")
    quiz_retry_h: float = opt(24.0, "hours before a worker may retake the quiz")
    block_name: str = opt("plic-soft-block-v1", "name of the soft-block qualification")
    dry_run: bool = opt(False, "print what would happen and call nothing")


def hit_token(mode: str, batch_id: str, rnd: int) -> str:
    """The UniqueRequestToken of a batch's HIT: stable across reruns, at most 64 characters."""
    raw = f"{TOKEN_PREFIX}-{mode}-r{rnd}-{batch_id}"
    if len(raw) <= 64:
        return raw
    return f"{TOKEN_PREFIX}-{mode}-r{rnd}-" + hashlib.sha256(batch_id.encode()).hexdigest()[:40]


def quiz_items_from_trials(db, n: int) -> list[QuizItem]:
    """The quiz: the first ``n`` sentinel trials (by id), shown as the HIT page would show them,
    with the page's opaque image names (``<token>.png`` under the image base URL)."""
    items = []
    for b in db.batch_ids():
        for t in db.batch_trials(b):
            if t["kind"] == "sentinel" and t["expected"] in ("a", "b"):
                right_side = "b" if t["left"] == "a" else "a"
                name = {s: image_token(t[f"{s}_id"]) + ".png" for s in ("ref", "a", "b")}
                correct = "left" if t["expected"] == t["left"] else "right"
                items.append(QuizItem(t["trial_id"], name["ref"], name[t["left"]],
                                      name[right_side], correct))
    items.sort(key=lambda it: it.question_id)
    return items[:n]


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
        html = render_html_question(db.batch_trials(batch_id), cfg.image_base_url,
                                    sandbox=mode != "live")
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


def publish(cfg: PublishConfig, market: Market | None, db, mode: str, out=print) -> dict:
    """Publish; returns {"created": [...hit ids], "existing": [...], "skipped": [...batches]}."""
    batches = list(cfg.batches) or db.batch_ids()
    unknown = set(batches) - set(db.batch_ids())
    if unknown:
        raise ValueError(f"unknown batches: {sorted(unknown)} (load the trials first)")
    for b in batches[:1]:  # fail on a bad URL or page before anything is created
        question_xml(cfg, db, b, mode)

    todo = [b for b in batches if db.hit_by_token(hit_token(mode, b, cfg.round)) is None]
    skipped = [b for b in batches if b not in todo]
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
    if cfg.quiz and cfg.image_base_url:
        items = quiz_items_from_trials(db, cfg.quiz_items)
        if not items:
            raise ValueError("no sentinel trials to build the quiz from")
        quiz_id = ensure_qualification(
            market, db, mode, cfg.quiz_name, "A short quiz: pick the image closer to the original.",
            cfg.dry_run, out, keywords="image, comparison",
            test_xml=quiz_question_form(items, cfg.image_base_url),
            answer_key_xml=quiz_answer_key(items), test_duration_s=20 * 60,
            retry_delay_s=int(cfg.quiz_retry_h * 3600))
    block_id = ensure_qualification(
        market, db, mode, cfg.block_name, "Workers whose past answers failed our checks.",
        cfg.dry_run, out)
    spec = HitTypeSpec(cfg.title, cfg.description, Decimal(cfg.reward),
                       cfg.assignment_duration_min * 60, int(cfg.auto_approval_delay_h * 3600),
                       cfg.keywords, requirements(cfg, mode, quiz_id, block_id))
    lifetime_s = int(cfg.lifetime_h * 3600)
    if cfg.dry_run:
        out(f"HIT type: would create ({len(spec.requirements)} requirements)")
        for b in todo:
            out(f"  would create HIT for batch {b} (token {hit_token(mode, b, cfg.round)})")
        return result
    hit_type_id = market.create_hit_type(spec)
    out(f"HIT type: {hit_type_id}")
    for b in todo:
        token = hit_token(mode, b, cfg.round)
        hit = market.create_hit(hit_type_id, question_xml(cfg, db, b, mode), cfg.assignments,
                                lifetime_s, token)
        expires = hit.expiration or datetime.now(timezone.utc) + timedelta(seconds=lifetime_s)
        db.add_hit(hit.hit_id, b, mode, hit_type_id=hit.hit_type_id or hit_type_id,
                   unique_request_token=token, reward=cfg.reward,
                   max_assignments=hit.max_assignments or cfg.assignments,
                   expires_at=expires.isoformat(), status=(hit.status or "assignable").lower(),
                   question=cfg.question,
                   url=cfg.external_url.replace("{batch_id}", b) if cfg.question == "external"
                   else None)
        result["existing" if hit.existed else "created"].append(hit.hit_id)
        out(f"  batch {b}: HIT {hit.hit_id}" + (" (already existed)" if hit.existed else ""))
    return result


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mturk.publish", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_market_arguments(p)
    add_arguments(p, PublishConfig)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    cfg = from_args(PublishConfig, args)
    db = open_db(args)
    mode = mode_of(args)
    live_error = check_live(args)
    try:
        if live_error and not cfg.dry_run:
            # show what it would cost, touch nothing, then refuse
            publish(PublishConfig(**{**vars(cfg), "dry_run": True}), None, db, mode)
            eprint(live_error)
            return 2
        market = None if cfg.dry_run else market_from_args(args, db.path)
        res = publish(cfg, market, db, mode)
    except (MarketError, ValueError, OSError) as e:
        eprint(f"error: {e}")
        return 1
    print(f"done: {len(res['created'])} created, {len(res['existing'])} found existing, "
          f"{len(res['skipped'])} already in the database")
    return 0


if __name__ == "__main__":
    sys.exit(main())

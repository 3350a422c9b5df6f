"""``mturk.publish``: cost first, qualifications by name, one HIT per batch, no duplicates ever."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from mturk.market import MarketError
from mturk.market import publish as P
from mturk.market.memory import InMemoryMarket
from mturk.store.study_db import StudyDB

URL = "https://study.example.org/hit"
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def trial_rows(n_batches=3, per_batch=4):
    rows = []
    for b in range(n_batches):
        for i in range(per_batch):
            sentinel = i == per_batch - 1
            rows.append({
                "trial_id": f"t{b}{i}", "batch_id": f"b{b}", "ref_id": f"r{i}",
                "ref_path": f"img/r{i}.png", "a_id": f"d{b}{i}a", "a_path": f"img/d{b}{i}a.png",
                "b_id": f"d{b}{i}b", "b_path": f"img/d{b}{i}b.png", "a_codec": "jpeg",
                "b_codec": "webp", "a_bpp": "0.3", "b_bpp": "0.31", "target_bpp": "0.3",
                "left": "a" if i % 2 else "b", "kind": "sentinel" if sentinel else "test",
                "expected": "a" if sentinel else "", "repeat_of": ""})
    return rows


@pytest.fixture
def db(tmp_path):
    d = StudyDB(tmp_path / "study.sqlite")
    d.load_trials(trial_rows())
    return d


def cfg(**kw):
    base = dict(external_url=URL, image_base_url="https://img.example.org/study/",
                quiz_items=2, assignments=3, reward="0.50", min_window="none")
    return P.PublishConfig(**{**base, **kw})


def test_publish_creates_one_hit_per_batch_and_records_ids(db):
    m = InMemoryMarket()
    lines = []
    res = P.publish(cfg(), m, db, "local", out=lines.append)
    assert len(res["created"]) == 3 and not res["existing"]
    # cost and balance come first, before any qualification or HIT line
    assert lines[1].startswith("3 HITs x 3 assignments x $0.50 = $4.50")
    assert any(line.startswith("total: $5.40") for line in lines[:5])
    assert lines.index("balance: $10000.00") < min(
        i for i, line in enumerate(lines) if "qualification" in line)
    hits = db.list_hits(mode="local")
    assert sorted(h["batch_id"] for h in hits) == ["b0", "b1", "b2"]
    for h in hits:
        live = m.get_hit(h["hit_id"])
        assert live.hit_type_id == h["hit_type_id"] and live.max_assignments == 3
        assert h["unique_request_token"] == P.hit_token("local", h["batch_id"], 1)
        assert h["url"] == URL
        assert f"<ExternalURL>{URL}</ExternalURL>" in m.s["hits"][h["hit_id"]]["question"]
    assert db.get_qualification_type("plic-2afc-quiz-v1", "local")
    assert db.get_qualification_type("plic-soft-block-v1", "local")


def test_rerun_publishes_nothing_new(db):
    m = InMemoryMarket()
    P.publish(cfg(), m, db, "local", out=lambda s: None)
    res = P.publish(cfg(), m, db, "local", out=lambda s: None)
    assert res["created"] == [] and sorted(res["skipped"]) == ["b0", "b1", "b2"]
    assert len(list(m.list_hits())) == 3
    # the qualification types were reused, not created again
    assert len(m.s["qual_types"]) == 2


def test_crash_after_create_then_republish_creates_no_duplicates(db, monkeypatch):
    m = InMemoryMarket()
    real_add = db.add_hit
    calls = {"n": 0}

    def crashing_add(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:  # the second HIT exists on the market, the process dies
            raise KeyboardInterrupt("killed")
        return real_add(*a, **kw)

    monkeypatch.setattr(db, "add_hit", crashing_add)
    with pytest.raises(KeyboardInterrupt):
        P.publish(cfg(), m, db, "local", out=lambda s: None)
    assert len(list(m.list_hits())) == 2 and len(db.list_hits()) == 1
    res = P.publish(cfg(), m, db, "local", out=lambda s: None)
    assert len(res["existing"]) == 1 and len(res["created"]) == 1
    assert len(list(m.list_hits())) == 3
    assert {h["hit_id"] for h in db.list_hits()} == {h.hit_id for h in m.list_hits()}


def test_qualification_found_by_name_is_reused(db):
    m = InMemoryMarket()
    made = m.create_qualification_type("plic-2afc-quiz-v1", "made earlier by hand")
    P.publish(cfg(), m, db, "local", out=lambda s: None)
    assert db.get_qualification_type("plic-2afc-quiz-v1", "local") == made.qualification_type_id


def test_requirements_and_masters_ids_per_mode():
    c = cfg(locale="us, ca", masters=True)
    sandbox = {r.qualification_type_id: r for r in P.requirements(c, "sandbox", "Q1", "B1")}
    live = {r.qualification_type_id for r in P.requirements(c, "live", "Q1", "B1")}
    assert P.MASTERS["sandbox"] in sandbox and P.MASTERS["live"] in live
    assert P.MASTERS["sandbox"] not in live and P.MASTERS["sandbox"] != P.MASTERS["live"]
    assert sandbox[P.PERCENT_APPROVED].integer_values == (95,)
    assert sandbox[P.NUMBER_APPROVED].integer_values == (500,)
    assert sandbox[P.LOCALE].locale_values == (("US", ""), ("CA", ""))
    assert sandbox["Q1"].comparator == "GreaterThanOrEqualTo"
    assert sandbox["Q1"].integer_values == (80,)
    assert sandbox["B1"].comparator == "DoesNotExist"
    off = P.requirements(cfg(min_approval_rate=0, min_approved=0), "sandbox", None, None)
    assert off == ()


def test_quiz_comes_from_sentinels_with_the_right_answer(db):
    items = P.quiz_items_from_trials(db, 10)
    sentinels = sorted((t for b in db.batch_ids() for t in db.batch_trials(b)
                        if t["kind"] == "sentinel"), key=lambda t: t["trial_id"])
    assert [it.question_id for it in items] == ["q1", "q2", "q3"]   # no trial id shown
    keys, seen = db.keys(), set()
    for it, t in zip(items, sentinels):  # expected "a", shown left (i = 3 is odd: left "a")
        assert it.correct == "left"
        assert it.left == keys.static_name("quiz", "quiz", t["trial_id"], "left")
        names = {it.ref, it.left, it.right}
        assert len(names) == 3 and not names & seen        # nothing shared, nothing reused
        seen |= names
        for n in names:                                    # names reveal nothing
            assert t["a_codec"] not in n and t["a_id"] not in n and t["ref_id"] not in n
    # the quiz's names are not the HTMLQuestion page's names of the same images
    assert keys.static_name("html", "b0", sentinels[0]["trial_id"], "left") not in seen


def test_tokens_are_stable_short_and_distinct():
    assert P.hit_token("sandbox", "b0", 1) == P.hit_token("sandbox", "b0", 1)
    assert P.hit_token("sandbox", "b0", 1) != P.hit_token("live", "b0", 1)
    assert P.hit_token("sandbox", "b0", 1) != P.hit_token("sandbox", "b0", 2)
    assert len(P.hit_token("sandbox", "x" * 200, 1)) <= 64


def test_dry_run_shows_question_and_every_requirement_and_calls_nothing(db, capsys):
    argv = ["--db", str(db.path), "--external-url", URL, "--dry-run", "--min-window", "none"]
    assert P.main(argv + ["--image-base-url", "https://img.example.org/s/"]) == 0
    out = capsys.readouterr().out
    assert "3 HITs x 3 assignments" in out and "dry run" in out
    # approval rate, approvals, the quiz and the soft block: 4, as the real run makes
    assert "HIT type: would create (4 requirements)" in out
    assert out.count("  requirement: ") == 4
    assert f"requirement: {P.WOULD_FIND_OR_CREATE} DoesNotExist" in out
    assert f"requirement: {P.WOULD_FIND_OR_CREATE} GreaterThanOrEqualTo 80" in out
    xml = out.split("Question XML of batch b0", 1)[1]
    assert "<ExternalQuestion" in xml and f"<ExternalURL>{URL}</ExternalURL>" in xml
    assert db.list_hits() == [] and db.get_qualification_type("plic-soft-block-v1",
                                                              "sandbox") is None
    # without a quiz: 3 requirements
    assert P.main(argv + ["--no-quiz"]) == 0
    assert "would create (3 requirements)" in capsys.readouterr().out


def test_live_without_yes_refuses_after_showing_cost(db, capsys, monkeypatch):
    monkeypatch.setattr(P, "market_from_args", lambda *a: pytest.fail("market opened"))
    assert P.main(["--db", str(db.path), "--external-url", URL, "--live", "--min-window",
                   "none"]) == 2
    cap = capsys.readouterr()
    assert "total: $" in cap.out and "--live --yes" in cap.err


def test_cli_with_memory_backend_persists_market_state(db, tmp_path):
    argv = ["--db", str(db.path), "--external-url", URL, "--min-window", "none", "--backend",
            "memory", "--memory-state", str(tmp_path / "m.json")]
    assert P.main(argv) == 0
    assert P.main(argv) == 0
    assert len(list(InMemoryMarket(state_path=tmp_path / "m.json").list_hits())) == 3
    assert len(db.list_hits(mode="local")) == 3


def test_bad_url_fails_before_anything_is_created(db):
    m = InMemoryMarket()
    with pytest.raises(ValueError):
        P.publish(cfg(external_url="http://insecure.example.org/{batch_id}"), m, db, "local")
    with pytest.raises(ValueError):
        P.publish(cfg(external_url=""), m, db, "local")
    with pytest.raises(ValueError):
        P.publish(cfg(question="html", image_base_url=""), m, db, "local")
    assert list(m.list_hits()) == [] and m.s["qual_types"] == {}


def real_study(tmp_path, batch_size=6, crop=48, **index_kw):
    """A study with real images (toy JPEGs) loaded as the server would load it."""
    from mturk.design.trials import TrialsConfig, build
    from mturk.schema import TRIALS_COLUMNS
    from mturk.sim.toy_index import make_toy_index
    from plic.tables import read_table

    kw = dict(n_refs=2, size=64, qualities=(5, 50, 90))
    index = make_toy_index(tmp_path / "dist", **{**kw, **index_kw})
    trials = build(index, tmp_path / "study", TrialsConfig(batch_size=batch_size, crop=crop,
                                                           sentinel_share=0.2, repeats=1))[0]
    d = StudyDB(tmp_path / "real.sqlite")
    d.load_trials(read_table(trials, TRIALS_COLUMNS), trials_csv=str(trials.resolve()))
    return d


def test_html_question_is_the_study_page_with_its_images(tmp_path):
    import xml.etree.ElementTree as ET

    from mturk.market.questions import NS_HTML_QUESTION
    from mturk.web.page import view_source
    from mturk.web.twoafc_page import describe_min_window

    db = real_study(tmp_path)
    m = InMemoryMarket()
    P.publish(cfg(question="html", min_window="auto"), m, db, "local", out=lambda s: None)
    keys = db.keys()
    hit_type = next(iter(m.s["hit_types"].values()))
    assert describe_min_window(48, 48) in hit_type["key"]        # the size, in the description
    assert P.main(["--db", str(db.path), "--question", "html", "--image-base-url",
                   "https://img.example.org/study/", "--quiz-items", "2",
                   "--export-images", str(tmp_path / "up")]) == 0
    uploaded = {f.name: f.read_bytes() for f in (tmp_path / "up").iterdir()}
    resolve = P.resolver(db)
    for h in db.list_hits():
        xml = m.s["hits"][h["hit_id"]]["question"]
        html = ET.fromstring(xml).find(f"{{{NS_HTML_QUESTION}}}HTMLContent").text
        assert html.lstrip().upper().startswith("<!DOCTYPE")
        assert "workersandbox.mturk.com/mturk/externalSubmit" in html
        for t in db.batch_trials(h["batch_id"]):
            assert t["trial_id"] not in html and t["a_id"] not in html
            assert t["a_codec"] not in html
            for v in ("ref", "left", "right"):
                name = keys.static_name("html", h["batch_id"], t["trial_id"], v)
                assert f"https://img.example.org/study/{name}" in html
                # the exported file under that name holds what the view shows
                assert uploaded[name] == resolve(view_source(t, v)[1]).read_bytes()


class NoCalls:
    """A market that fails the test on any call."""

    def __getattr__(self, name):
        pytest.fail(f"market.{name} called")


def test_question_over_64kb_is_refused_before_any_call(tmp_path, capsys):
    from mturk.market.questions import MAX_QUESTION_BYTES, QuestionTooLargeError

    # 4 references x 28 pairs x 2 targets: one batch of 240 trials, as one HTMLQuestion
    db = real_study(tmp_path, batch_size=240, crop=16, n_refs=4, size=16,
                    qualities=(5, 15, 25, 40, 55, 70, 85, 95), target_bpps=(0.5, 1.0))
    with pytest.raises(QuestionTooLargeError, match="65,535"):
        P.publish(cfg(question="html"), NoCalls(), db, "sandbox", out=lambda s: None)
    argv = ["--db", str(db.path), "--question", "html", "--image-base-url",
            "https://img.example.org/s/", "--min-window", "none"]
    assert P.main(argv + ["--dry-run"]) == 2                  # a one-line error, not a trace
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "HTMLQuestion is" in err[0] and "--batch-size" in err[0]
    assert db.list_hits() == [] and MAX_QUESTION_BYTES == 65535


# -- the boto3 path under Stubber: publish, crash, republish --------------------------------------

def _boto_market():
    pytest.importorskip("botocore")
    from botocore.stub import Stubber

    from mturk.market import Backoff
    from mturk.market.boto import Boto3Market
    from tests.mturk.test_market_backends import boto_client

    client = boto_client()
    stub = Stubber(client)
    stub.activate()
    return Boto3Market(client, backoff=Backoff(sleep=lambda s: None)), stub


def _hit(hid, batch):
    return {"HIT": {"HITId": hid, "HITTypeId": "T" * 30, "HITStatus": "Assignable",
                    "MaxAssignments": 3, "Reward": "0.50", "Expiration": NOW + timedelta(days=3),
                    "RequesterAnnotation": P.hit_token("sandbox", batch, 1)}}


def test_boto_publish_crash_republish(db, monkeypatch):
    from botocore.stub import ANY

    market, stub = _boto_market()
    c = cfg(quiz=False, batches=["b0", "b1"])
    stub.add_response("get_account_balance", {"AvailableBalance": "100.00"}, {})
    stub.add_response("list_qualification_types", {"NumResults": 0, "QualificationTypes": []},
                      {"Query": "plic-soft-block-v1", "MustBeRequestable": False,
                       "MustBeOwnedByCaller": True, "MaxResults": 100})
    stub.add_response("create_qualification_type",
                      {"QualificationType": {"QualificationTypeId": "B" * 30,
                                             "Name": "plic-soft-block-v1"}},
                      {"Name": "plic-soft-block-v1", "QualificationTypeStatus": "Active",
                       "Description": "Workers whose past answers failed our checks."})
    hit_type = {"Title": c.title, "Description": c.description, "Reward": "0.50",
                "AssignmentDurationInSeconds": 1800, "AutoApprovalDelayInSeconds": 259200,
                "Keywords": c.keywords,
                "QualificationRequirements": [
                    {"QualificationTypeId": P.PERCENT_APPROVED, "IntegerValues": [95],
                     "Comparator": "GreaterThanOrEqualTo", "ActionsGuarded": "Accept"},
                    {"QualificationTypeId": P.NUMBER_APPROVED, "IntegerValues": [500],
                     "Comparator": "GreaterThanOrEqualTo", "ActionsGuarded": "Accept"},
                    {"QualificationTypeId": "B" * 30, "Comparator": "DoesNotExist",
                     "ActionsGuarded": "DiscoverPreviewAndAccept"}]}
    stub.add_response("create_hit_type", {"HITTypeId": "T" * 30}, hit_type)
    h0, h1 = "0" * 29 + "H", "1" * 29 + "H"
    for hid, b in ((h0, "b0"), (h1, "b1")):
        stub.add_response("create_hit_with_hit_type", _hit(hid, b),
                          {"HITTypeId": "T" * 30, "MaxAssignments": 3, "LifetimeInSeconds": 259200,
                           "Question": ANY, "RequesterAnnotation": P.hit_token("sandbox", b, 1),
                           "UniqueRequestToken": P.hit_token("sandbox", b, 1)})
    real_add, calls = db.add_hit, {"n": 0}

    def crashing_add(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_add(*a, **kw)

    monkeypatch.setattr(db, "add_hit", crashing_add)
    with pytest.raises(KeyboardInterrupt):
        P.publish(c, market, db, "sandbox", out=lambda s: None)
    stub.assert_no_pending_responses()
    assert [h["hit_id"] for h in db.list_hits()] == [h0]
    assert db.get_qualification_type("plic-soft-block-v1", "sandbox") == "B" * 30

    # the rerun: b0 is in the database (skipped); b1's token answers "already exists"
    stub.add_response("get_account_balance", {"AvailableBalance": "98.20"}, {})
    stub.add_response("create_hit_type", {"HITTypeId": "T" * 30}, hit_type)
    stub.add_client_error("create_hit_with_hit_type", "RequestError",
                          f"The HIT with ID \"{h1}\" already exists. (1700000000000)",
                          expected_params={"HITTypeId": "T" * 30, "MaxAssignments": 3,
                                           "LifetimeInSeconds": 259200, "Question": ANY,
                                           "RequesterAnnotation": P.hit_token("sandbox", "b1", 1),
                                           "UniqueRequestToken": P.hit_token("sandbox", "b1", 1)})
    stub.add_response("get_hit", _hit(h1, "b1"), {"HITId": h1})
    res = P.publish(c, market, db, "sandbox", out=lambda s: None)
    stub.assert_no_pending_responses()
    assert res == {**res, "created": [], "existing": [h1], "skipped": ["b0"]}
    assert sorted(h["hit_id"] for h in db.list_hits(mode="sandbox")) == [h0, h1]


def test_boto_low_balance_on_live_refuses(db):
    market, stub = _boto_market()
    stub.add_response("get_account_balance", {"AvailableBalance": "1.00"}, {})
    with pytest.raises(MarketError):
        P.publish(cfg(), market, db, "live", out=lambda s: None)
    assert db.list_hits() == []
    assert Decimal("1.00") < P.CostEstimate(3, 3, Decimal("0.50")).total


def test_auto_window_with_unreadable_images_says_how_to_go_on(db):
    # the fixture's trial images do not exist: the header read (plic.image_io) fails in one line
    with pytest.raises(ValueError, match="cannot read the trial images.*--min-window WxH or none"):
        P.window_sentence(cfg(min_window="auto"), db, ["b0"])

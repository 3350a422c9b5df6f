"""One conformance test for every marketplace backend.

The in-memory market runs it as is. The boto3 market runs it under ``botocore.stub.Stubber``:
each ``h.expect(...)`` queues what MTurk would answer and the exact request we must send, and
Stubber also validates every request against the real MTurk service model. The assertions after
each call are the behaviour both backends owe the study code.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from mturk.market import (
    Backoff,
    HitTypeSpec,
    MarketError,
    QualificationRequirement,
    TransientMarketError,
)
from mturk.market import questions as Q
from mturk.market.memory import InMemoryMarket

botocore = pytest.importorskip("botocore")
from botocore.stub import Stubber  # noqa: E402

from mturk.market.boto import SANDBOX_ENDPOINT, Boto3Market  # noqa: E402

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


def boto_client():
    import boto3

    return boto3.session.Session().client(
        "mturk", region_name="us-east-1", endpoint_url=SANDBOX_ENDPOINT,
        aws_access_key_id="AKIDTEST", aws_secret_access_key="not-a-secret")


class Clock:
    def __init__(self):
        self.t = NOW

    def __call__(self):
        return self.t


class MemoryHarness:
    def __init__(self):
        self.clock = Clock()
        self.market = InMemoryMarket(clock=self.clock)

    def expect(self, op, response, params=None):
        pass

    def error(self, op, code, message, params=None):
        pass

    def submits(self, hit_id, worker, answers, aid_hint):
        return self.market.submit_assignment(hit_id, worker, answers)

    def done(self):
        pass


class BotoHarness:
    def __init__(self):
        self.clock = Clock()
        self.sleeps = []
        client = boto_client()
        self.stub = Stubber(client)
        self.stub.activate()
        self.market = Boto3Market(client, backoff=Backoff(sleep=self.sleeps.append))

    def expect(self, op, response, params=None):
        self.stub.add_response(op, response, params)

    def error(self, op, code, message, params=None):
        self.stub.add_client_error(op, service_error_code=code, service_message=message,
                                   http_status_code=400, expected_params=params)

    def submits(self, hit_id, worker, answers, aid_hint):
        return aid_hint  # the worker side happens on MTurk; listing is stubbed below

    def done(self):
        self.stub.assert_no_pending_responses()


@pytest.fixture(params=["memory", "boto3"])
def h(request):
    return MemoryHarness() if request.param == "memory" else BotoHarness()


QUAL = "plic-2afc-quiz"
ITEMS = [Q.QuizItem("q1", "r1.png", "a1.png", "b1.png", "left"),
         Q.QuizItem("q2", "r2.png", "a2.png", "b2.png", "right")]
SPEC = HitTypeSpec("Compare images", "Pick the closer image", Decimal("0.50"), 1800, 259200,
                   "image, comparison",
                   (QualificationRequirement("000000000000000000L0", "GreaterThanOrEqualTo", (95,)),
                    QualificationRequirement("00000000000000000071", "In",
                                             locale_values=(("US", ""), ("CA", "")))))
HID = "3HITAAAAAAAAAAAAAAAAAAAAAAAAA1"
TID = "3TYPEAAAAAAAAAAAAAAAAAAAAAAAA1"
QID = "3QUALAAAAAAAAAAAAAAAAAAAAAAAA1"
A1, A2 = "3ASGAAAAAAAAAAAAAAAAAAAAAAAAA1", "3ASGAAAAAAAAAAAAAAAAAAAAAAAAA2"


def hit_resp(hid, tid, status="Assignable", max_asg=2, annotation="tok-1", avail=2, done=0):
    return {"HIT": {"HITId": hid, "HITTypeId": tid, "HITStatus": status, "MaxAssignments": max_asg,
                    "Reward": "0.50", "RequesterAnnotation": annotation,
                    "Expiration": NOW + timedelta(days=1), "NumberOfAssignmentsPending": 0,
                    "NumberOfAssignmentsAvailable": avail, "NumberOfAssignmentsCompleted": done}}


def asg(aid, worker, hid, status, answers):
    return {"AssignmentId": aid, "WorkerId": worker, "HITId": hid, "AssignmentStatus": status,
            "Answer": Q.answers_xml(answers), "AcceptTime": NOW, "SubmitTime": NOW}


def test_conformance(h):
    m = h.market
    # -- balance and the qualification test, created once by name ---------------------------------
    h.expect("get_account_balance", {"AvailableBalance": "10000.00"}, {})
    assert m.get_account_balance() == Decimal("10000.00")

    listq = {"Query": QUAL, "MustBeRequestable": False, "MustBeOwnedByCaller": True,
             "MaxResults": 100}
    h.expect("list_qualification_types", {"NumResults": 0, "QualificationTypes": []}, listq)
    assert m.find_qualification_type(QUAL) is None

    test_xml, key_xml = Q.quiz_question_form(ITEMS, "https://x.test/q/"), Q.quiz_answer_key(ITEMS)
    h.expect("create_qualification_type",
             {"QualificationType": {"QualificationTypeId": QID, "Name": QUAL,
                                    "QualificationTypeStatus": "Active"}},
             {"Name": QUAL, "Description": "2AFC quiz", "QualificationTypeStatus": "Active",
              "Test": test_xml, "AnswerKey": key_xml, "TestDurationInSeconds": 600,
              "RetryDelayInSeconds": 86400})
    qt = m.create_qualification_type(QUAL, "2AFC quiz", test_xml=test_xml, answer_key_xml=key_xml,
                                     test_duration_s=600, retry_delay_s=86400)
    assert qt.name == QUAL and qt.qualification_type_id
    qid = qt.qualification_type_id

    h.expect("list_qualification_types",
             {"NumResults": 2, "QualificationTypes": [
                 {"QualificationTypeId": "X" * 30, "Name": QUAL + "-other"},
                 {"QualificationTypeId": QID, "Name": QUAL, "QualificationTypeStatus": "Active"}]},
             listq)
    assert m.find_qualification_type(QUAL).qualification_type_id == qid

    h.error("create_qualification_type", "RequestError",
            "You have already created a QualificationType with this name.")
    with pytest.raises(MarketError):
        m.create_qualification_type(QUAL, "2AFC quiz")

    # -- HIT type: same properties, same id -------------------------------------------------------
    for _ in range(2):
        h.expect("create_hit_type", {"HITTypeId": TID},
                 {"Title": "Compare images", "Description": "Pick the closer image",
                  "Reward": "0.50", "AssignmentDurationInSeconds": 1800,
                  "AutoApprovalDelayInSeconds": 259200, "Keywords": "image, comparison",
                  "QualificationRequirements": [r.to_api() for r in SPEC.requirements]})
    tid = m.create_hit_type(SPEC)
    assert m.create_hit_type(SPEC) == tid

    # -- HITs: the same token twice gives one HIT -------------------------------------------------
    xml = Q.external_question("https://study.test/hit?batch=b0")
    create = {"HITTypeId": tid, "MaxAssignments": 2, "LifetimeInSeconds": 86400, "Question": xml,
              "RequesterAnnotation": "tok-1", "UniqueRequestToken": "tok-1"}
    h.expect("create_hit_with_hit_type", hit_resp(HID, TID), create)
    hit = m.create_hit(tid, xml, 2, 86400, "tok-1")
    assert not hit.existed and hit.status == "Assignable" and hit.max_assignments == 2
    assert hit.reward == Decimal("0.50") and hit.annotation == "tok-1"

    h.error("create_hit_with_hit_type", "RequestError",
            f'There is already a HIT which exists with the same UniqueRequestToken. '
            f'HIT ID: {HID} (1700000000000)', create)
    h.expect("get_hit", hit_resp(HID, TID), {"HITId": HID})
    again = m.create_hit(tid, xml, 2, 86400, "tok-1")
    assert again.existed and again.hit_id == hit.hit_id

    h.expect("get_hit", hit_resp(HID, TID), {"HITId": hit.hit_id})
    assert m.get_hit(hit.hit_id).hit_id == hit.hit_id
    h.expect("list_hits", {"NumResults": 1, "HITs": [hit_resp(HID, TID)["HIT"]]},
             {"MaxResults": 100})
    assert [x.hit_id for x in m.list_hits()] == [hit.hit_id]

    # -- two workers submit; listing pages through both -------------------------------------------
    ans1, ans2 = {"t1": "a", "t2": "b"}, {"t1": "b", "t2": "b"}
    a1 = h.submits(hit.hit_id, "W1", ans1, A1)
    a2 = h.submits(hit.hit_id, "W2", ans2, A2)
    statuses = ["Submitted", "Approved", "Rejected"]
    h.expect("list_assignments_for_hit",
             {"NextToken": "p2", "NumResults": 1,
              "Assignments": [asg(A1, "W1", HID, "Submitted", ans1)]},
             {"HITId": hit.hit_id, "AssignmentStatuses": statuses, "MaxResults": 100})
    h.expect("list_assignments_for_hit",
             {"NumResults": 1, "Assignments": [asg(A2, "W2", HID, "Submitted", ans2)]},
             {"HITId": hit.hit_id, "AssignmentStatuses": statuses, "MaxResults": 100,
              "NextToken": "p2"})
    got = sorted(m.list_assignments(hit.hit_id), key=lambda a: a.worker_id)
    assert [(a.assignment_id, a.worker_id, a.status) for a in got] == \
        [(a1, "W1", "Submitted"), (a2, "W2", "Submitted")]
    assert Q.parse_answers(got[0].answer_xml) == ans1
    assert Q.parse_answers(got[1].answer_xml) == ans2

    # -- review once; the second review of an assignment fails ------------------------------------
    h.expect("approve_assignment", {}, {"AssignmentId": a1, "RequesterFeedback": "Thanks"})
    m.approve_assignment(a1, "Thanks")
    h.expect("reject_assignment", {}, {"AssignmentId": a2, "RequesterFeedback": "Failed checks"})
    m.reject_assignment(a2, "Failed checks")
    h.error("approve_assignment", "RequestError",
            "This operation can be called with a status of: Submitted")
    with pytest.raises(MarketError):
        m.approve_assignment(a1)
    h.expect("list_assignments_for_hit",
             {"NumResults": 1, "Assignments": [asg(A1, "W1", HID, "Approved", ans1)]},
             {"HITId": hit.hit_id, "AssignmentStatuses": ["Approved"], "MaxResults": 100})
    assert [a.assignment_id for a in m.list_assignments(hit.hit_id, ["Approved"])] == [a1]

    # -- a bonus is paid once per token -----------------------------------------------------------
    bonus = {"WorkerId": "W1", "AssignmentId": a1, "BonusAmount": "0.25", "Reason": "Accurate",
             "UniqueRequestToken": "bonus-1"}
    h.expect("send_bonus", {}, bonus)
    assert m.send_bonus("W1", a1, Decimal("0.25"), "Accurate", "bonus-1") is True
    h.error("send_bonus", "RequestError",
            'The idempotency token "bonus-1" has already been processed. (1700000000000)', bonus)
    assert m.send_bonus("W1", a1, "0.25", "Accurate", "bonus-1") is False
    h.expect("list_bonus_payments",
             {"NumResults": 1, "BonusPayments": [
                 {"WorkerId": "W1", "BonusAmount": "0.25", "AssignmentId": A1,
                  "Reason": "Accurate", "GrantTime": NOW}]},
             {"AssignmentId": a1, "MaxResults": 100})
    paid = m.list_bonus_payments(a1)
    assert [(b.worker_id, b.assignment_id, b.amount) for b in paid] == \
        [("W1", a1, Decimal("0.25"))]

    # -- soft block: a qualification value --------------------------------------------------------
    h.expect("associate_qualification_with_worker", {},
             {"QualificationTypeId": qid, "WorkerId": "W2", "IntegerValue": 0,
              "SendNotification": False})
    m.associate_qualification(qid, "W2", 0)
    h.expect("get_qualification_score",
             {"Qualification": {"QualificationTypeId": QID, "WorkerId": "W2", "IntegerValue": 0,
                                "Status": "Granted"}},
             {"QualificationTypeId": qid, "WorkerId": "W2"})
    assert m.worker_qualification(qid, "W2") == 0
    h.error("get_qualification_score", "RequestError",
            "You requested a Qualification that does not exist.")
    assert m.worker_qualification(qid, "W9") is None
    h.expect("disassociate_qualification_from_worker", {},
             {"QualificationTypeId": qid, "WorkerId": "W2", "Reason": "unblocked"})
    m.disassociate_qualification(qid, "W2", "unblocked")
    h.error("get_qualification_score", "RequestError",
            "You requested a Qualification that does not exist.")
    assert m.worker_qualification(qid, "W2") is None

    # -- extend, expire, delete -------------------------------------------------------------------
    h.expect("create_additional_assignments_for_hit", {},
             {"HITId": hit.hit_id, "NumberOfAdditionalAssignments": 1,
              "UniqueRequestToken": "extend-1"})
    m.create_additional_assignments(hit.hit_id, 1, "extend-1")
    h.expect("get_hit", hit_resp(HID, TID, max_asg=3, avail=1, done=2), {"HITId": hit.hit_id})
    live = m.get_hit(hit.hit_id)
    assert live.max_assignments == 3 and live.available == 1 and live.status == "Assignable"

    h.error("delete_hit", "RequestError", "This HIT is currently in the state 'Assignable'.")
    with pytest.raises(MarketError):
        m.delete_hit(hit.hit_id)

    past = h.clock() - timedelta(minutes=1)
    h.expect("update_expiration_for_hit", {}, {"HITId": hit.hit_id, "ExpireAt": past})
    m.update_expiration(hit.hit_id, past)
    h.expect("get_hit", hit_resp(HID, TID, status="Reviewable", max_asg=3, avail=0, done=2),
             {"HITId": hit.hit_id})
    gone = m.get_hit(hit.hit_id)
    assert gone.status == "Reviewable" and gone.available == 0
    h.expect("delete_hit", {}, {"HITId": hit.hit_id})
    m.delete_hit(hit.hit_id)
    h.expect("list_hits", {"NumResults": 0, "HITs": []}, {"MaxResults": 100})
    assert list(m.list_hits()) == []
    h.done()


# -- boto3-only paths: throttling, transient faults, a duplicate answer without an id -------------

def test_throttling_is_retried_with_backoff():
    h = BotoHarness()
    h.error("get_account_balance", "ThrottlingException", "Rate exceeded")
    h.error("get_account_balance", "ServiceFault", "internal error")
    h.expect("get_account_balance", {"AvailableBalance": "12.30"}, {})
    assert h.market.get_account_balance() == Decimal("12.30")
    assert len(h.sleeps) == 2 and all(s >= 0 for s in h.sleeps)
    h.done()


def test_throttling_gives_up_after_max_attempts():
    h = BotoHarness()
    h.market.backoff.max_attempts = 3
    for _ in range(3):
        h.error("create_hit_type", "RequestError", "You have exceeded the maximum request rate")
    with pytest.raises(TransientMarketError):
        h.market.create_hit_type(SPEC)
    assert len(h.sleeps) == 2
    h.done()


def test_request_errors_are_not_retried():
    h = BotoHarness()
    h.error("get_hit", "RequestError", "Hit 3X does not exist. (1)")
    with pytest.raises(MarketError):
        h.market.get_hit("3X")
    assert h.sleeps == []
    h.done()


def test_duplicate_token_without_id_finds_the_hit_by_annotation():
    h = BotoHarness()
    h.error("create_hit_with_hit_type", "RequestError",
            'The idempotency token "tok-7" has already been processed. (1)')
    other = hit_resp("9" * 30, TID, annotation="tok-6")["HIT"]
    mine = hit_resp(HID, TID, annotation="tok-7")["HIT"]
    h.expect("list_hits", {"NumResults": 1, "HITs": [other], "NextToken": "n"}, {"MaxResults": 100})
    h.expect("list_hits", {"NumResults": 1, "HITs": [mine]}, {"MaxResults": 100, "NextToken": "n"})
    hit = h.market.create_hit(TID, "<x/>", 1, 60, "tok-7")
    assert hit.existed and hit.hit_id == HID
    h.done()


def test_transient_error_on_create_hit_retries_with_the_same_token():
    h = BotoHarness()
    create = {"HITTypeId": TID, "MaxAssignments": 1, "LifetimeInSeconds": 60, "Question": "<x/>",
              "RequesterAnnotation": "tok-8", "UniqueRequestToken": "tok-8"}
    h.error("create_hit_with_hit_type", "ServiceUnavailable", "try later", create)
    h.expect("create_hit_with_hit_type", hit_resp(HID, TID, annotation="tok-8"), create)
    assert h.market.create_hit(TID, "<x/>", 1, 60, "tok-8").hit_id == HID
    h.done()


def test_server_errors_are_transient():
    h = BotoHarness()
    h.stub.add_client_error("get_hit", service_error_code="InternalServerError",
                            service_message="oops", http_status_code=503)
    h.expect("get_hit", hit_resp(HID, TID), {"HITId": HID})
    assert h.market.get_hit(HID).hit_id == HID and len(h.sleeps) == 1
    h.done()


def test_make_client_always_names_the_endpoint(monkeypatch):
    from mturk.market.boto import LIVE_ENDPOINT, make_client

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-secret")
    sandbox, live = make_client(sandbox=True), make_client(sandbox=False)
    assert sandbox.meta.endpoint_url == SANDBOX_ENDPOINT
    assert live.meta.endpoint_url == LIVE_ENDPOINT
    assert sandbox.meta.region_name == live.meta.region_name == "us-east-1"
    assert Boto3Market(sandbox).mode == "sandbox" and Boto3Market(live).mode == "live"


def test_missing_credentials_is_a_clear_error_and_not_retried(monkeypatch, tmp_path):
    from mturk.market.boto import make_client

    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    sleeps = []
    m = Boto3Market(make_client(sandbox=True), backoff=Backoff(sleep=sleeps.append))
    with pytest.raises(MarketError, match="credentials") as e:
        m.get_account_balance()
    assert not isinstance(e.value, TransientMarketError) and sleeps == []


def test_mode_follows_the_endpoint():
    assert Boto3Market(boto_client()).mode == "sandbox"
    assert Boto3Market(boto_client(), mode="live").mode == "live"


def test_backoff_delays_are_bounded_and_grow():
    b = Backoff(base_s=1, cap_s=8)
    for attempt, bound in [(1, 1), (2, 2), (3, 4), (4, 8), (9, 8)]:
        assert all(0 <= b.delay(attempt) <= bound for _ in range(50))


# -- in-memory only: the worker side and persistence ----------------------------------------------

def test_memory_state_survives_a_restart(tmp_path):
    path = tmp_path / "market.json"
    m = InMemoryMarket(state_path=path)
    tid = m.create_hit_type(SPEC)
    hit = m.create_hit(tid, "<x/>", 1, 3600, "tok")
    aid = m.submit_assignment(hit.hit_id, "W1", {"t1": "a"})
    m2 = InMemoryMarket(state_path=path)
    assert m2.create_hit(tid, "<x/>", 1, 3600, "tok").existed
    assert [a.assignment_id for a in m2.list_assignments(hit.hit_id)] == [aid]
    with pytest.raises(MarketError):  # one assignment only, already taken
        m2.submit_assignment(hit.hit_id, "W2", {})


def test_memory_enforces_qualification_requirements():
    m = InMemoryMarket()
    q = m.create_qualification_type("block", "soft block")
    spec = HitTypeSpec("t", "d", Decimal("0.1"), 60, 60, "",
                       (QualificationRequirement(q.qualification_type_id, "DoesNotExist"),))
    hit = m.create_hit(m.create_hit_type(spec), "<x/>", 3, 3600, "tok")
    m.submit_assignment(hit.hit_id, "W1", {})
    m.associate_qualification(q.qualification_type_id, "W2", 1)
    with pytest.raises(MarketError):
        m.submit_assignment(hit.hit_id, "W2", {})
    with pytest.raises(MarketError):  # once per worker
        m.submit_assignment(hit.hit_id, "W1", {})


def test_memory_approval_and_bonus_spend_the_balance():
    m = InMemoryMarket(balance="5.00")
    hit = m.create_hit(m.create_hit_type(SPEC), "<x/>", 1, 3600, "tok")
    aid = m.submit_assignment(hit.hit_id, "W1", {})
    m.approve_assignment(aid)
    m.send_bonus("W1", aid, "1.00", "r", "b")
    m.send_bonus("W1", aid, "1.00", "r", "b")
    assert m.get_account_balance() == Decimal("5.00") - Decimal("0.60") - Decimal("1.20")
    assert len(m.bonuses()) == 1

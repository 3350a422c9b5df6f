"""Against the real MTurk **sandbox** (never live): opt-in with ``-m live`` and AWS credentials.

    .venv/bin/python -m pytest -m live tests/mturk/test_publish_live.py

Checks what Stubber cannot: that the sandbox accepts our documents and requirements, and what it
really answers to a repeated UniqueRequestToken. Creates one HIT with one assignment (sandbox money
is not real) and expires and deletes it at the end.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from mturk.market import HitTypeSpec
from mturk.market import publish as P
from mturk.market import questions as Q

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def market():
    boto3 = pytest.importorskip("boto3")
    if boto3.session.Session().get_credentials() is None:
        pytest.skip("no AWS credentials in the usual chain")
    from mturk.market.boto import SANDBOX_ENDPOINT, Boto3Market

    m = Boto3Market.connect(sandbox=True)
    assert m.client.meta.endpoint_url == SANDBOX_ENDPOINT and m.mode == "sandbox"
    return m


def test_sandbox_round_trip(market):
    assert market.get_account_balance() >= Decimal("0")
    items = [Q.QuizItem("q1", "r.png", "a.png", "b.png", "left")]
    name = f"plic-live-test-{uuid.uuid4().hex[:8]}"
    qt = market.create_qualification_type(
        name, "plic test, safe to delete",
        test_xml=Q.quiz_question_form(items, "https://example.org/img/"),
        answer_key_xml=Q.quiz_answer_key(items), test_duration_s=300)
    assert market.find_qualification_type(name).qualification_type_id == qt.qualification_type_id
    cfg = P.PublishConfig(min_approved=0, locale="US", masters=False)
    spec = HitTypeSpec("plic test HIT (ignore)", "test", Decimal("0.01"), 300, 3600, "test",
                       P.requirements(cfg, "sandbox", qt.qualification_type_id, None))
    tid = market.create_hit_type(spec)
    token = f"plic-live-test-{uuid.uuid4().hex}"
    hit = market.create_hit(tid, Q.external_question("https://example.org/hit"), 1, 600, token)
    try:
        again = market.create_hit(tid, Q.external_question("https://example.org/hit"), 1, 600,
                                  token)
        assert again.existed and again.hit_id == hit.hit_id
        assert list(market.list_assignments(hit.hit_id)) == []
    finally:
        market.update_expiration(hit.hit_id, datetime(1970, 1, 1, tzinfo=timezone.utc))
        market.delete_hit(hit.hit_id)
        market.client.delete_qualification_type(QualificationTypeId=qt.qualification_type_id)

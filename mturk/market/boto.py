"""Amazon Mechanical Turk through boto3.

``sandbox`` picks the endpoint and nothing else; both endpoints are always passed explicitly
(without one boto3 talks to the live marketplace), region us-east-1. Credentials come from the
usual AWS chain (environment, ``~/.aws``, instance role) and are never printed or logged.

botocore's own retries are switched off so that one layer (:class:`~.retry.Backoff`) retries, and
tests can drive it under ``botocore.stub.Stubber``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import datetime
from decimal import Decimal

from .base import (
    ASSIGNMENT_STATUSES,
    Assignment,
    BonusRecord,
    Hit,
    HitTypeSpec,
    Market,
    MarketError,
    NotFoundError,
    QualificationType,
    TransientMarketError,
    dollars,
    money_str,
)
from .retry import Backoff

SANDBOX_ENDPOINT = "https://mturk-requester-sandbox.us-east-1.amazonaws.com"
LIVE_ENDPOINT = "https://mturk-requester.us-east-1.amazonaws.com"
REGION = "us-east-1"

_TRANSIENT_CODES = {"Throttling", "ThrottlingException", "TooManyRequestsException",
                    "RequestThrottled", "RequestThrottledException", "RequestLimitExceeded",
                    "ServiceUnavailable", "ServiceFault", "InternalError", "InternalFailure"}
# MTurk ids: 30 upper-case letters and digits (HIT, assignment, HIT type, qualification type).
_ID = re.compile(r"\b[0-9A-Z]{30}\b")


def endpoint(sandbox: bool) -> str:
    return SANDBOX_ENDPOINT if sandbox else LIVE_ENDPOINT


def make_client(sandbox: bool = True, profile: str | None = None):
    """A boto3 MTurk client for the sandbox (default) or the live marketplace."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(profile_name=profile)
    cfg = Config(retries={"total_max_attempts": 1}, connect_timeout=10, read_timeout=60)
    return session.client("mturk", region_name=REGION, endpoint_url=endpoint(sandbox), config=cfg)


def _is_throttle_message(msg: str) -> bool:
    m = msg.lower()
    return "rate exceeded" in m or "maximum request rate" in m or "throttl" in m


def _is_duplicate_message(msg: str) -> bool:
    m = msg.lower()
    return "already" in m and ("exist" in m or "processed" in m)


def translate(exc: Exception, operation: str) -> Exception:
    """A botocore exception as a :class:`MarketError` (other exceptions pass through)."""
    from botocore.exceptions import (
        ClientError,
        ConnectionError,
        HTTPClientError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code, msg = err.get("Code", ""), err.get("Message", str(exc))
        http = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0
        if code in _TRANSIENT_CODES or _is_throttle_message(msg) or http >= 500:
            return TransientMarketError(msg, code, operation)
        if "does not exist" in msg.lower() or "not found" in msg.lower():
            return NotFoundError(msg, code, operation)
        return MarketError(msg, code, operation)
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return MarketError("no usable AWS credentials in the usual chain (environment, "
                           "~/.aws, --profile, instance role)", type(exc).__name__, operation)
    if isinstance(exc, (ConnectionError, HTTPClientError)):
        return TransientMarketError(str(exc), type(exc).__name__, operation)
    return exc


class Boto3Market(Market):
    """:class:`~.base.Market` over a boto3 ``mturk`` client (see :func:`make_client`)."""

    def __init__(self, client, mode: str | None = None, backoff: Backoff | None = None):
        self.client = client
        url = getattr(getattr(client, "meta", None), "endpoint_url", "") or ""
        self.mode = mode or ("sandbox" if "sandbox" in url else "live")
        self.backoff = backoff or Backoff()

    @classmethod
    def connect(cls, sandbox: bool = True, profile: str | None = None,
                backoff: Backoff | None = None) -> Boto3Market:
        return cls(make_client(sandbox, profile), "sandbox" if sandbox else "live", backoff)

    def _call(self, operation: str, **params):
        method = getattr(self.client, operation)

        def once():
            try:
                return method(**params)
            except Exception as e:  # noqa: BLE001 - translated, then re-raised
                raise translate(e, operation) from e

        return self.backoff.call(once, operation)

    def _pages(self, operation: str, key: str, **params) -> Iterator[dict]:
        token = None
        while True:
            page = self._call(operation, **params, **({"NextToken": token} if token else {}))
            yield from page.get(key, [])
            token = page.get("NextToken")
            if not token or not page.get(key):
                return

    # -- account --------------------------------------------------------------------------------
    def get_account_balance(self) -> Decimal:
        return dollars(self._call("get_account_balance")["AvailableBalance"])

    # -- qualifications -------------------------------------------------------------------------
    def find_qualification_type(self, name: str) -> QualificationType | None:
        for q in self._pages("list_qualification_types", "QualificationTypes", Query=name,
                             MustBeRequestable=False, MustBeOwnedByCaller=True, MaxResults=100):
            if q.get("Name") == name:
                return QualificationType(q["QualificationTypeId"], q["Name"],
                                         q.get("QualificationTypeStatus", "Active"))
        return None

    def create_qualification_type(self, name, description, *, keywords="", test_xml=None,
                                  answer_key_xml=None, test_duration_s=None, retry_delay_s=None,
                                  auto_granted=False) -> QualificationType:
        params: dict = {"Name": name, "Description": description,
                        "QualificationTypeStatus": "Active"}
        if keywords:
            params["Keywords"] = keywords
        if test_xml:
            params["Test"] = test_xml
            params["TestDurationInSeconds"] = int(test_duration_s or 600)
            if answer_key_xml:
                params["AnswerKey"] = answer_key_xml
        if retry_delay_s is not None:
            params["RetryDelayInSeconds"] = int(retry_delay_s)
        if auto_granted:
            params["AutoGranted"] = True
        q = self._call("create_qualification_type", **params)["QualificationType"]
        return QualificationType(q["QualificationTypeId"], q["Name"],
                                 q.get("QualificationTypeStatus", "Active"))

    def associate_qualification(self, qualification_type_id, worker_id, value=1, notify=False):
        self._call("associate_qualification_with_worker",
                   QualificationTypeId=qualification_type_id, WorkerId=worker_id,
                   IntegerValue=int(value), SendNotification=bool(notify))

    def disassociate_qualification(self, qualification_type_id, worker_id, reason=""):
        params = {"QualificationTypeId": qualification_type_id, "WorkerId": worker_id}
        if reason:
            params["Reason"] = reason
        try:
            self._call("disassociate_qualification_from_worker", **params)
        except NotFoundError:
            pass

    def worker_qualification(self, qualification_type_id, worker_id) -> int | None:
        try:
            q = self._call("get_qualification_score", QualificationTypeId=qualification_type_id,
                           WorkerId=worker_id)["Qualification"]
        except NotFoundError:
            return None
        except MarketError as e:
            # MTurk answers a worker without the qualification with a RequestError.
            if "qualification" in str(e).lower() and "not" in str(e).lower():
                return None
            raise
        if q.get("Status", "Granted") != "Granted":
            return None
        return int(q.get("IntegerValue", 1))

    # -- HITs -----------------------------------------------------------------------------------
    def create_hit_type(self, spec: HitTypeSpec) -> str:
        params: dict = {
            "Title": spec.title, "Description": spec.description,
            "Reward": money_str(spec.reward),
            "AssignmentDurationInSeconds": int(spec.assignment_duration_s),
            "AutoApprovalDelayInSeconds": int(spec.auto_approval_delay_s),
        }
        if spec.keywords:
            params["Keywords"] = spec.keywords
        if spec.requirements:
            params["QualificationRequirements"] = [r.to_api() for r in spec.requirements]
        return self._call("create_hit_type", **params)["HITTypeId"]

    def create_hit(self, hit_type_id, question_xml, max_assignments, lifetime_s,
                   unique_request_token, annotation="") -> Hit:
        annotation = annotation or unique_request_token
        try:
            h = self._call("create_hit_with_hit_type", HITTypeId=hit_type_id,
                           MaxAssignments=int(max_assignments), LifetimeInSeconds=int(lifetime_s),
                           Question=question_xml, RequesterAnnotation=annotation,
                           UniqueRequestToken=unique_request_token)["HIT"]
            return _hit(h)
        except MarketError as e:
            if isinstance(e, TransientMarketError) or not _is_duplicate_message(str(e)):
                raise
            hit = self._existing_hit(str(e), hit_type_id, annotation)
            if hit is None:
                raise
            hit.existed = True
            return hit

    def _existing_hit(self, message: str, hit_type_id: str, annotation: str) -> Hit | None:
        """The HIT a duplicate-token answer refers to: its id from the message, else a search."""
        for hit_id in _ID.findall(message):
            if hit_id == hit_type_id:
                continue
            try:
                return self.get_hit(hit_id)
            except NotFoundError:
                continue
        for hit in self.list_hits():
            if hit.annotation == annotation and hit.hit_type_id == hit_type_id:
                return hit
        return None

    def get_hit(self, hit_id) -> Hit:
        return _hit(self._call("get_hit", HITId=hit_id)["HIT"])

    def list_hits(self) -> Iterator[Hit]:
        for h in self._pages("list_hits", "HITs", MaxResults=100):
            yield _hit(h)

    def update_expiration(self, hit_id, expire_at: datetime) -> None:
        self._call("update_expiration_for_hit", HITId=hit_id, ExpireAt=expire_at)

    def create_additional_assignments(self, hit_id, n, unique_request_token) -> None:
        try:
            self._call("create_additional_assignments_for_hit", HITId=hit_id,
                       NumberOfAdditionalAssignments=int(n),
                       UniqueRequestToken=unique_request_token)
        except MarketError as e:
            if isinstance(e, TransientMarketError) or not _is_duplicate_message(str(e)):
                raise

    def delete_hit(self, hit_id) -> None:
        self._call("delete_hit", HITId=hit_id)

    # -- assignments ----------------------------------------------------------------------------
    def list_assignments(self, hit_id, statuses: Sequence[str] = ASSIGNMENT_STATUSES):
        for a in self._pages("list_assignments_for_hit", "Assignments", HITId=hit_id,
                             AssignmentStatuses=list(statuses), MaxResults=100):
            yield Assignment(a["AssignmentId"], a["WorkerId"], a["HITId"],
                             a["AssignmentStatus"], a.get("Answer", ""), a.get("AcceptTime"),
                             a.get("SubmitTime"), a.get("RequesterFeedback", ""))

    def approve_assignment(self, assignment_id, feedback="") -> None:
        params = {"AssignmentId": assignment_id}
        if feedback:
            params["RequesterFeedback"] = feedback[:1024]
        self._call("approve_assignment", **params)

    def reject_assignment(self, assignment_id, feedback) -> None:
        self._call("reject_assignment", AssignmentId=assignment_id,
                   RequesterFeedback=feedback[:1024])

    def send_bonus(self, worker_id, assignment_id, amount, reason, unique_request_token) -> bool:
        try:
            self._call("send_bonus", WorkerId=worker_id, AssignmentId=assignment_id,
                       BonusAmount=money_str(amount), Reason=reason,
                       UniqueRequestToken=unique_request_token)
        except MarketError as e:
            if isinstance(e, TransientMarketError) or not _is_duplicate_message(str(e)):
                raise
            return False
        return True

    def list_bonus_payments(self, assignment_id) -> list[BonusRecord]:
        return [BonusRecord(b["WorkerId"], b["AssignmentId"], dollars(b["BonusAmount"]),
                            b.get("Reason", ""))
                for b in self._pages("list_bonus_payments", "BonusPayments",
                                     AssignmentId=assignment_id, MaxResults=100)]


def _hit(h: dict) -> Hit:
    return Hit(hit_id=h["HITId"], hit_type_id=h.get("HITTypeId", ""),
               status=h.get("HITStatus", ""), max_assignments=int(h.get("MaxAssignments", 0)),
               reward=dollars(h.get("Reward", "0")), expiration=h.get("Expiration"),
               annotation=h.get("RequesterAnnotation", ""),
               pending=int(h.get("NumberOfAssignmentsPending", 0)),
               available=int(h.get("NumberOfAssignmentsAvailable", 0)),
               completed=int(h.get("NumberOfAssignmentsCompleted", 0)))

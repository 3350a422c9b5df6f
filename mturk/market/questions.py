"""The XML documents MTurk takes and returns: ExternalQuestion, HTMLQuestion, the qualification
quiz (QuestionForm plus AnswerKey) and the QuestionFormAnswers that come back with assignments.

Every document is built with ElementTree (so text is escaped) in the namespace MTurk's schema
names; ``tests/mturk/test_questions.py`` checks well-formedness and namespaces.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urljoin, urlparse

_BASE = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/"
NS_EXTERNAL_QUESTION = _BASE + "2006-07-14/ExternalQuestion.xsd"
NS_HTML_QUESTION = _BASE + "2011-11-11/HTMLQuestion.xsd"
NS_QUESTION_FORM = _BASE + "2017-11-06/QuestionForm.xsd"
NS_ANSWER_KEY = _BASE + "2005-10-01/AnswerKey.xsd"
NS_ANSWERS = _BASE + "2005-10-01/QuestionFormAnswers.xsd"

#: The path, under the ``turkSubmitTo`` host MTurk gives the page, that takes the HIT's answers.
EXTERNAL_SUBMIT_PATH = "/mturk/externalSubmit"
#: MTurk refuses Question (and qualification Test) XML larger than this many bytes, whitespace
#: included (CreateHIT's ``Question``: "must not be larger than 64 kilobytes (65,535 bytes)").
MAX_QUESTION_BYTES = 65_535


class QuestionTooLargeError(ValueError):
    """A Question or Test document over MAX_QUESTION_BYTES: MTurk would refuse it."""


def check_size(xml: str, what: str) -> str:
    """``xml`` unchanged, or QuestionTooLargeError when MTurk would refuse its size."""
    n = len(xml.encode("utf-8"))
    if n > MAX_QUESTION_BYTES:
        raise QuestionTooLargeError(
            f"{what} is {n:,} bytes; MTurk takes at most {MAX_QUESTION_BYTES:,} (use smaller "
            "batches, mturk.trials --batch-size, or an ExternalQuestion)")
    return xml
_MAX_FRAME_HEIGHT = 0  # 0: MTurk sizes the frame to the window


def _doc(root: ET.Element) -> str:
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def _sub(parent: ET.Element, tag: str, text=None) -> ET.Element:
    el = ET.SubElement(parent, tag)
    if text is not None:
        el.text = str(text)
    return el


def _require_https(url: str, what: str) -> str:
    p = urlparse(url)
    if p.scheme != "https" or not p.netloc:
        raise ValueError(f"{what} must be an absolute https:// URL (MTurk refuses others): {url!r}")
    return url


def external_question(url: str, frame_height: int = _MAX_FRAME_HEIGHT) -> str:
    """An ExternalQuestion: MTurk shows ``url`` (HTTPS) in a frame, adding assignmentId, hitId,
    workerId and turkSubmitTo to its query string."""
    root = ET.Element("ExternalQuestion", xmlns=NS_EXTERNAL_QUESTION)
    _sub(root, "ExternalURL", _require_https(url, "ExternalQuestion URL"))
    _sub(root, "FrameHeight", int(frame_height))
    return check_size(_doc(root), "the ExternalQuestion")


def html_question(html: str, frame_height: int = _MAX_FRAME_HEIGHT) -> str:
    """An HTMLQuestion: MTurk hosts ``html`` itself. The page must post its answers with the
    ``assignmentId`` to ``{turkSubmitTo}/mturk/externalSubmit``."""
    if "<!DOCTYPE" not in html[:200].upper():
        raise ValueError("HTMLQuestion content must start with a <!DOCTYPE html> declaration")
    # CDATA cannot hold "]]>": split it across two sections.
    body = html.replace("]]>", "]]]]><![CDATA[>")
    return check_size('<?xml version="1.0" encoding="UTF-8"?>\n'
                      f'<HTMLQuestion xmlns="{NS_HTML_QUESTION}">'
                      f"<HTMLContent><![CDATA[{body}]]></HTMLContent>"
                      f"<FrameHeight>{int(frame_height)}</FrameHeight></HTMLQuestion>",
                      "the HTMLQuestion")


# -- the qualification quiz --------------------------------------------------------------------

@dataclass(frozen=True)
class QuizItem:
    """One 2AFC question: which of two distorted images (left, right) is closer to the reference.

    Paths are relative to the quiz's public base URL (or absolute HTTPS URLs)."""

    question_id: str
    ref: str
    left: str
    right: str
    correct: str  # "left" or "right"

    def __post_init__(self):
        if self.correct not in ("left", "right"):
            raise ValueError(f"{self.question_id}: correct must be 'left' or 'right'")


def _image(parent: ET.Element, url: str, alt: str) -> None:
    b = _sub(parent, "Binary")
    mt = _sub(b, "MimeType")
    _sub(mt, "Type", "image")
    ext = urlparse(url).path.rsplit(".", 1)[-1].lower()
    _sub(mt, "SubType", {"jpg": "jpeg"}.get(ext, ext if ext in ("png", "jpeg", "gif",
                                                                   "webp") else "png"))
    _sub(b, "DataURL", url)
    _sub(b, "AltText", alt)


def quiz_question_form(items: Sequence[QuizItem], base_url: str,
                       title: str = "Image comparison qualification") -> str:
    """The quiz as a QuestionForm: per item the reference, then the two candidates, and a
    left/right choice. Images are fetched by the worker's browser from ``base_url``."""
    if not items:
        raise ValueError("a quiz needs at least one item")
    base = _require_https(base_url.rstrip("/") + "/", "quiz image base URL")
    root = ET.Element("QuestionForm", xmlns=NS_QUESTION_FORM)
    ov = _sub(root, "Overview")
    _sub(ov, "Title", title)
    _sub(ov, "Text", "Each question shows a reference image and two altered versions of it. "
                     "Pick the version that looks closer to the reference.")
    for i, it in enumerate(items, 1):
        q = _sub(root, "Question")
        _sub(q, "QuestionIdentifier", it.question_id)
        _sub(q, "DisplayName", f"Question {i}")
        _sub(q, "IsRequired", "true")
        c = _sub(q, "QuestionContent")
        _sub(c, "Text", "Reference:")
        _image(c, urljoin(base, it.ref), "reference image")
        _sub(c, "Text", "Left:")
        _image(c, urljoin(base, it.left), "left candidate")
        _sub(c, "Text", "Right:")
        _image(c, urljoin(base, it.right), "right candidate")
        _sub(c, "Text", "Which one is closer to the reference?")
        sel = _sub(_sub(q, "AnswerSpecification"), "SelectionAnswer")
        _sub(sel, "StyleSuggestion", "radiobutton")
        sels = _sub(sel, "Selections")
        for ident, label in (("left", "Left"), ("right", "Right")):
            s = _sub(sels, "Selection")
            _sub(s, "SelectionIdentifier", ident)
            _sub(s, "Text", label)
    return check_size(_doc(root), "the qualification test")


def quiz_answer_key(items: Sequence[QuizItem]) -> str:
    """The AnswerKey: one point per correct item; the qualification value is the percentage
    correct (0-100), so a HIT can require e.g. ``>= 80``."""
    root = ET.Element("AnswerKey", xmlns=NS_ANSWER_KEY)
    for it in items:
        q = _sub(root, "Question")
        _sub(q, "QuestionIdentifier", it.question_id)
        for ident in ("left", "right"):
            o = _sub(q, "AnswerOption")
            _sub(o, "SelectionIdentifier", ident)
            _sub(o, "AnswerScore", 1 if ident == it.correct else 0)
    pm = _sub(_sub(root, "QualificationValueMapping"), "PercentageMapping")
    _sub(pm, "MaximumSummedScore", len(items))
    return _doc(root)


def score_quiz(items: Sequence[QuizItem], answers: Mapping[str, str]) -> int:
    """What MTurk computes from :func:`quiz_answer_key`: percent correct, rounded down."""
    right = sum(answers.get(it.question_id) == it.correct for it in items)
    return (100 * right) // len(items)


# -- answers -----------------------------------------------------------------------------------

def parse_answers(xml: str) -> dict[str, str]:
    """QuestionFormAnswers XML as ``{QuestionIdentifier: value}``.

    FreeText answers give their text; selection answers their SelectionIdentifier (several joined
    with ``|``); an UploadedFileKey its key. Elements in another namespace (or none) are read too:
    MTurk guarantees the schema, not the namespace prefix.
    """
    root = ET.fromstring(xml)
    if _local(root.tag) != "QuestionFormAnswers":
        raise ValueError(f"not a QuestionFormAnswers document: <{_local(root.tag)}>")
    out: dict[str, str] = {}
    for ans in root:
        if _local(ans.tag) != "Answer":
            continue
        qid, values = None, []
        for child in ans:
            name = _local(child.tag)
            if name == "QuestionIdentifier":
                qid = (child.text or "").strip()
            elif name in ("FreeText", "SelectionIdentifier", "OtherSelectionText"):
                values.append(child.text or "")
            elif name == "UploadedFileKey":
                values.append(child.text or "")
        if qid:
            out[qid] = "|".join(values)
    return out


def answers_xml(answers: Mapping[str, object]) -> str:
    """The QuestionFormAnswers MTurk returns for a form posted with these fields (FreeText)."""
    root = ET.Element("QuestionFormAnswers", xmlns=NS_ANSWERS)
    for k, v in answers.items():
        a = _sub(root, "Answer")
        _sub(a, "QuestionIdentifier", k)
        _sub(a, "FreeText", "" if v is None else v)
    return _doc(root)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]

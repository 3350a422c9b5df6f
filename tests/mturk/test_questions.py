"""The MTurk XML documents: well-formed, in the right namespaces, with the right structure."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from mturk.market import questions as Q

ITEMS = [Q.QuizItem("q1", "ref1.png", "a1.png", "b1.jpg", "left"),
         Q.QuizItem("q2", "ref2.png", "a&2.png", "b2.png", "right"),
         Q.QuizItem("q3", "https://cdn.test/r3.png", "a3.png", "b3.png", "right")]


def ns(tag, uri):
    return f"{{{uri}}}{tag}"


def test_namespaces_are_mturks_schema_urls():
    base = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/"
    assert Q.NS_EXTERNAL_QUESTION == base + "2006-07-14/ExternalQuestion.xsd"
    assert Q.NS_HTML_QUESTION == base + "2011-11-11/HTMLQuestion.xsd"
    assert Q.NS_QUESTION_FORM == base + "2017-11-06/QuestionForm.xsd"
    assert Q.NS_ANSWER_KEY == base + "2005-10-01/AnswerKey.xsd"
    assert Q.NS_ANSWERS == base + "2005-10-01/QuestionFormAnswers.xsd"


def test_external_question():
    url = "https://study.example.org/hit?batch=b01&study=s"
    root = ET.fromstring(Q.external_question(url))
    assert root.tag == ns("ExternalQuestion", Q.NS_EXTERNAL_QUESTION)
    assert root.find(ns("ExternalURL", Q.NS_EXTERNAL_QUESTION)).text == url  # & round-trips
    assert int(root.find(ns("FrameHeight", Q.NS_EXTERNAL_QUESTION)).text) >= 0
    assert "&amp;" in Q.external_question(url)


@pytest.mark.parametrize("url", ["http://study.example.org/hit", "/hit", "ftp://x/y", ""])
def test_external_question_needs_https(url):
    with pytest.raises(ValueError):
        Q.external_question(url)


def test_html_question_keeps_html_verbatim_even_with_cdata_end():
    html = ('<!DOCTYPE html><html><body><form method="post" action="x">'
            '<script>var a = [[1]]>0 && "<b>";</script></form></body></html>')
    root = ET.fromstring(Q.html_question(html))
    assert root.tag == ns("HTMLQuestion", Q.NS_HTML_QUESTION)
    assert root.find(ns("HTMLContent", Q.NS_HTML_QUESTION)).text == html
    assert root.find(ns("FrameHeight", Q.NS_HTML_QUESTION)) is not None
    with pytest.raises(ValueError):
        Q.html_question("<html></html>")


def test_quiz_question_form_structure():
    root = ET.fromstring(Q.quiz_question_form(ITEMS, "https://img.example.org/quiz"))
    n = Q.NS_QUESTION_FORM
    assert root.tag == ns("QuestionForm", n)
    # every element is in the QuestionForm namespace (MTurk rejects mixed documents)
    assert all(el.tag.startswith("{" + n + "}") for el in root.iter())
    qs = root.findall(ns("Question", n))
    assert [q.find(ns("QuestionIdentifier", n)).text for q in qs] == ["q1", "q2", "q3"]
    for q, it in zip(qs, ITEMS):
        urls = [u.text for u in q.iter(ns("DataURL", n))]
        assert len(urls) == 3 and all(u.startswith("https://") for u in urls)
        if it.question_id == "q3":
            assert urls[0] == "https://cdn.test/r3.png"
        else:
            assert urls[0] == f"https://img.example.org/quiz/{it.ref}"
        sels = [s.text for s in q.iter(ns("SelectionIdentifier", n))]
        assert sels == ["left", "right"]
        assert q.find(ns("IsRequired", n)).text == "true"
    subtypes = [s.text for s in root.iter(ns("SubType", n))]
    assert "jpeg" in subtypes and set(subtypes) <= {"png", "jpeg"}
    # the & in a file name is escaped in the document and comes back intact
    assert any("a&2.png" in u.text for u in root.iter(ns("DataURL", n)))


def test_quiz_needs_https_base_and_items():
    with pytest.raises(ValueError):
        Q.quiz_question_form(ITEMS, "http://img.example.org/")
    with pytest.raises(ValueError):
        Q.quiz_question_form([], "https://img.example.org/")
    with pytest.raises(ValueError):
        Q.QuizItem("q", "r", "a", "b", "a")


def test_answer_key_scores_match_the_correct_side():
    root = ET.fromstring(Q.quiz_answer_key(ITEMS))
    n = Q.NS_ANSWER_KEY
    assert root.tag == ns("AnswerKey", n)
    assert all(el.tag.startswith("{" + n + "}") for el in root.iter())
    for q, it in zip(root.findall(ns("Question", n)), ITEMS):
        assert q.find(ns("QuestionIdentifier", n)).text == it.question_id
        scores = {o.find(ns("SelectionIdentifier", n)).text: int(o.find(ns("AnswerScore", n)).text)
                  for o in q.findall(ns("AnswerOption", n))}
        assert scores == {it.correct: 1, ("right" if it.correct == "left" else "left"): 0}
    mapping = root.find(ns("QualificationValueMapping", n))
    assert int(mapping.find(f".//{ns('MaximumSummedScore', n)}").text) == len(ITEMS)


def test_score_quiz_is_percent_correct():
    assert Q.score_quiz(ITEMS, {"q1": "left", "q2": "right", "q3": "right"}) == 100
    assert Q.score_quiz(ITEMS, {"q1": "left", "q2": "left"}) == 33
    assert Q.score_quiz(ITEMS, {}) == 0


def test_answers_round_trip_and_namespace():
    answers = {"answers": '[{"trial_id": "t1", "choice": "a"}]', "comment": "<ok> & fine",
               "empty": ""}
    xml = Q.answers_xml(answers)
    root = ET.fromstring(xml)
    assert root.tag == ns("QuestionFormAnswers", Q.NS_ANSWERS)
    assert Q.parse_answers(xml) == answers


def test_parse_answers_reads_mturks_documents():
    xml = f"""<?xml version="1.0" encoding="ASCII"?>
<QuestionFormAnswers xmlns="{Q.NS_ANSWERS}">
  <Answer><QuestionIdentifier>q1</QuestionIdentifier><SelectionIdentifier>left</SelectionIdentifier>
  </Answer>
  <Answer><QuestionIdentifier>multi</QuestionIdentifier>
    <SelectionIdentifier>a</SelectionIdentifier><SelectionIdentifier>b</SelectionIdentifier></Answer>
  <Answer><QuestionIdentifier>note</QuestionIdentifier><FreeText>hello</FreeText></Answer>
</QuestionFormAnswers>"""
    assert Q.parse_answers(xml) == {"q1": "left", "multi": "a|b", "note": "hello"}
    with pytest.raises(ValueError):
        Q.parse_answers("<Other/>")
    with pytest.raises(ET.ParseError):
        Q.parse_answers("<QuestionFormAnswers>")

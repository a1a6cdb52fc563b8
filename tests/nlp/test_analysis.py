"""server.nlp on real spaCy: identifiers kept whole, sentences timed from their cues, key phrases, and the
questions a sentence's parse lets us ask."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from server.nlp import pipeline
from server.nlp.analysis import CAUSAL, CONDITIONAL, DEFINITION, _NounChunks, analyse
from server.nlp.questions import WHAT_DOES, WHAT_IF, WHAT_IS, WHY, frames_of


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str


def test_identifiers_stay_one_token_and_are_marked_as_code() -> None:
    doc = pipeline.parse("Use justify-content with Promise.all, call useEffect() and read response.ok, e.g. today.")
    words = [token.text for token in doc]
    assert {"justify-content", "Promise.all", "useEffect()", "response.ok"} <= set(words)
    assert "e.g." in words
    code = {token.text for token in doc if token._.code}
    assert code == {"Promise.all", "useEffect()", "response.ok"}
    assert not pipeline.is_code("re-render") and not pipeline.is_code("e.g.") and pipeline.is_code("setCount")


def test_content_keys_are_lemmas_and_identifiers() -> None:
    assert pipeline.content_keys("The containers were shrinking because of flex-shrink") == [
        "container",
        "shrink",
        "flex-shrink",
    ]


def test_sentences_are_timed_from_the_cues_they_span() -> None:
    cues = [
        Cue(10.0, 14.0, "Flexbox starts with one declaration."),
        Cue(14.5, 18.5, "The main axis is the direction the items"),
        Cue(19.0, 21.0, "flow in. That is all."),
    ]
    analysis = analyse(cues)
    texts = [sentence.text for sentence in analysis.sentences]
    assert texts == [
        "Flexbox starts with one declaration.",
        "The main axis is the direction the items flow in.",
        "That is all.",
    ]
    first, second, third = analysis.sentences
    assert (first.start_seconds, first.end_seconds) == (10.0, 14.0)
    assert second.start_seconds == 14.5 and 19.0 < second.end_seconds < 21.0
    assert second.end_seconds <= third.start_seconds and third.end_seconds == 21.0
    assert DEFINITION in second.kinds


def test_key_phrases_are_trimmed_noun_phrases_code_terms_and_names() -> None:
    cues = [
        Cue(0.0, 4.0, "The flex-direction property sets the main axis."),
        Cue(4.0, 8.0, "React compares the old state with the main axis of a flex container."),
        Cue(8.0, 12.0, "Call Promise.all when the requests are independent."),
        Cue(12.0, 16.0, "You can set flex-direction to column, and a single-line container stays on one line."),
    ]
    analysis = analyse(cues)
    phrases = {phrase.key: phrase for phrase in analysis.phrases}
    assert phrases["main axis"].mentions == 2 and phrases["main axis"].sentences == [0, 1]
    assert phrases["flex container"].kind == "term"
    assert phrases["promise.all"].kind == "code" and phrases["promise.all"].surface == "Promise.all"
    assert phrases["flex-direction property"].kind == "term" and phrases["flex-direction"].kind == "code"
    assert "the main axis" not in phrases and "a flex container" not in phrases
    # Used as a noun somewhere, a hyphenated word is a term everywhere; one only ever an adjective is not.
    assert phrases["flex-direction"].sentences == [0, 3] and "single-line" not in phrases
    first = analysis.sentences[0]
    written = [first.text[m.start : m.end] for m in first.mentions]
    assert "flex-direction property" in written and "main axis" in written


def frames(text: str) -> list[tuple[str, str, str]]:
    sentence = next(iter(pipeline.parse(text).sents))
    return [(frame.kind, frame.question, frame.answer) for frame in frames_of(sentence, frozenset({"React"}))]


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        (
            "A flex item overflows because its min-width is auto.",
            (WHY, "Why does a flex item overflow?", "its min-width is auto"),
        ),
        (
            "The effect function itself must not be async, because an async function returns a promise.",
            (WHY, "Why must the effect function itself not be async?", "an async function returns a promise"),
        ),
        (
            "When you call the setter with a new value, React schedules a re-render.",
            (WHAT_IF, "What happens when you call the setter with a new value?", "React schedules a re-render"),
        ),
        (
            "If one item needs to break from the group, give that item align-self.",
            (WHAT_IF, "What should you do if one item needs to break from the group?", "give that item align-self"),
        ),
        (
            "A Promise is an object that represents a value that is not available yet.",
            (WHAT_IS, "What is a Promise?", "an object that represents a value that is not available yet"),
        ),
        (
            "justify-content distributes space along the main axis.",
            (WHAT_DOES, "What does justify-content do?", "distributes space along the main axis"),
        ),
    ],
)
def test_questions_from_the_parse(sentence: str, expected: tuple[str, str, str]) -> None:
    assert expected in frames(sentence)


@pytest.mark.parametrize(
    "sentence",
    [
        "It refuses to shrink because its min-width is auto.",  # "Why does it refuse…?" means nothing alone
        "If it returns another promise, the chain waits for that promise.",
        "A typical function reads like this.",
        "useState solves both problems.",
        "How does the browser know?",
    ],
)
def test_no_question_where_it_would_point_outside_the_sentence(sentence: str) -> None:
    assert frames(sentence) == []


def test_kinds_of_statement() -> None:
    analysis = analyse(
        [
            Cue(0.0, 5.0, "The item overflows because its min-width is auto."),
            Cue(5.0, 9.0, "If you mutate the object, React skips the re-render."),
        ]
    )
    assert CAUSAL in analysis.sentences[0].kinds
    assert CONDITIONAL in analysis.sentences[1].kinds


def test_no_cues_no_analysis() -> None:
    analysis = analyse([])
    assert analysis.sentences == () and analysis.phrases == ()


def test_each_sentence_gets_the_noun_chunks_spacy_finds_in_it() -> None:
    doc = next(
        pipeline.parse_many(
            [
                "The flex container lays out its items. A long URL breaks the layout of the page. "
                "Then the justify-content property spreads the remaining space between the items."
            ]
        )
    )
    chunks = _NounChunks(doc)

    per_sentence = [chunks.within(sentence) for sentence in doc.sents]

    assert len(per_sentence) == 3
    assert per_sentence == [list(sentence.noun_chunks) for sentence in doc.sents]
    assert all(per_sentence)

"""Key terms, the leak check, and the offline hint generator on the demo course's own chunks (no server)."""

from __future__ import annotations

import functools
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.agents.hints import check_model_hint, offline_hint
from server.agents.terms import TermIndex, contains_answer, mask_answers, occurrences
from server.demo import load_demo_course
from server.llm.grounding import Source
from server.llm.persona import persona_for
from server.transcripts.chunking import chunk_cues
from server.transcripts.parsing import TranscriptFormat, parse_transcript
from server.transcripts.search import SearchHit

TEMPLATE_WORDS = [
    "watch",
    "Re-watch",
    "lecture",
    "happens",
    "changes",
    "explains",
    "claim",
    "example",
    "main",
    "pause",
    "words",
    "job",
    "connects",
    "relates",
    "replay",
    "look again",
    "go back",
    "problem",
]


@functools.cache
def demo_chunks() -> tuple[SearchHit, ...]:
    hits: list[SearchHit] = []
    course = load_demo_course()
    for video in course.videos:
        parsed = parse_transcript(video.vtt, TranscriptFormat.WEBVTT, duration_seconds=video.duration_seconds)
        for chunk in chunk_cues(parsed.cues):
            hits.append(
                SearchHit(
                    f"{video.video_id}-{chunk.index}",
                    video.video_id,
                    course.course_id,
                    chunk.start,
                    chunk.end,
                    chunk.text,
                    0.0,
                )
            )
    return tuple(hits)


@functools.cache
def demo_index() -> TermIndex:
    return TermIndex({hit.chunk_id: hit.text for hit in demo_chunks()})


def test_contains_answer_ignores_case_inflection_and_stop_words() -> None:
    assert contains_answer("Why do FLEX CONTAINERS matter?", "flex container")
    assert contains_answer("what does the event loop do", "The event loop")
    assert contains_answer("use promise.all here", "Promise.all")
    assert contains_answer("it sets max-age=60", "max-age")
    assert not contains_answer("flex items and containers", "flex container")
    assert contains_answer("throw an error", "row")  # literal text, even inside a word: erring on the safe side
    assert not contains_answer("a grid item", "id")  # under three characters: whole words only
    assert contains_answer("when the id changes", "ID")
    assert not contains_answer("anything", "")


def test_mask_answers_blanks_every_form_of_an_answer() -> None:
    masked = mask_answers("The flex container and its Flex Containers; flex-containerish.", ["flex container"])
    assert "container" not in masked.replace("containerish", "")
    assert masked.count("_____") == 2


def test_key_terms_of_the_demo_course() -> None:
    index = demo_index()
    surfaces = {term.surface for term, _ in index.rank(limit=200)}
    assert {"event loop", "flex container", "justify-content", "dependency array", "Promise.all"} <= surfaces
    ranked = [term for term, _ in index.rank(limit=50)]
    for i, term in enumerate(ranked):
        assert not any(term.overlaps(other) for other in ranked[:i])
    (axis,) = [term for term in index.terms_in_text("what is the main axis?")]
    assert axis.surface == "main axis"
    assert occurrences("The Main Axis runs left to right.", axis.key) == [(4, 13)]


answers = st.one_of(
    st.sampled_from([term.surface for term, _ in demo_index().rank(limit=300)]),
    st.sampled_from(sorted({w for hit in demo_chunks() for w in re.findall(r"[A-Za-z][\w-]{2,}", hit.text)})),
    st.sampled_from(TEMPLATE_WORDS),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz -", min_size=3, max_size=20).filter(str.strip),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    focus=st.sampled_from(demo_chunks()),
    forbidden=st.lists(answers, max_size=8),
    struggle=st.one_of(st.just(""), answers, st.text(max_size=60)),
    personality=st.sampled_from(["friendly", "professional", "peer"]),
    length=st.sampled_from(["short", "medium", "detailed"]),
)
def test_offline_hints_never_contain_a_forbidden_answer(
    focus: SearchHit, forbidden: list[str], struggle: str, personality: str, length: str
) -> None:
    persona = persona_for(personality, length)
    hint, validation = offline_hint(focus, demo_index(), struggle=struggle, forbidden=forbidden, persona=persona)
    for answer in forbidden:
        assert not contains_answer(hint, answer), (hint, answer)
        if len(answer.strip()) >= 3:
            assert " ".join(answer.casefold().split()) not in " ".join(hint.casefold().split())
    assert re.search(r"\d{2}:\d{2}–\d{2}:\d{2}", hint)
    assert validation in {"offline", "offline-generic"}
    # Never a quoted sentence: at most short terms are taken from the transcript.
    for sentence in re.split(r"(?<=[.!?])\s+", focus.text):
        if len(sentence.split()) >= 6:
            assert sentence not in hint


def test_offline_hints_are_guiding_questions_about_the_chunk() -> None:
    focus = next(hit for hit in demo_chunks() if "justify-content distributes space" in hit.text)
    hint, validation = offline_hint(focus, demo_index(), struggle="", forbidden=[], persona=persona_for("", ""))
    assert validation == "offline"
    assert hint.startswith("Take another look at 01:23–02:06, where the lecture connects “")
    assert hint.endswith("?")
    short, _ = offline_hint(
        focus, demo_index(), struggle="", forbidden=[], persona=persona_for("professional", "short")
    )
    assert short.startswith("Re-watch 01:23–02:06: ") and short.count("?") == 1 and short.count(".") <= 1


def test_model_hint_checks() -> None:
    hit = demo_chunks()[1]
    sources = [Source("c1", hit)]
    assert check_model_hint({"hint": "Where do the axes come from?", "source": "c1"}, sources, []) == (
        "Where do the axes come from?",
        sources[0],
    )
    assert "gives away" in str(
        check_model_hint({"hint": "Is it the main axis?", "source": "c1"}, sources, ["main axis"])
    )
    assert "no `hint`" in str(check_model_hint({"text": "?"}, sources, []))
    assert "empty" in str(check_model_hint({"hint": "  ", "source": "c1"}, sources, []))
    assert "longer than" in str(check_model_hint({"hint": "Why? " + "x" * 400, "source": "c1"}, sources, []))

"""The leak check, the course's key-phrase index and the offline hint ladder, on the demo course as ingest
stored it (its sentences, key phrases and their vectors), without going through GetHint."""

from __future__ import annotations

import random
import re

from server.agents.corpus import CorpusCache, CourseCorpus
from server.agents.hint_ladder import NARROW, QUESTION, SCAFFOLD, choose_step, hint_text, rung
from server.agents.hints import check_model_hint
from server.agents.leaks import contains_answer, mask_answers
from server.core.values import SearchHit
from server.llm.grounding import Source
from server.llm.persona import persona_for
from server.nlp.sentence import StoredSentence
from tests.conftest import RunningServer

COURSE = "webdev-101"


async def demo_corpus(server: RunningServer) -> CourseCorpus:
    runtime = server.server.runtime
    return await CorpusCache(runtime.search, runtime.sentences).load(COURSE)


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


async def test_key_phrases_of_the_demo_course(offline_server: RunningServer) -> None:
    index = (await demo_corpus(offline_server)).index
    surfaces = {term.surface for term, _ in index.rank(limit=300)}
    assert {"event loop", "flex container", "justify-content", "dependency array", "Promise.all"} <= surfaces
    ranked = [term for term, _ in index.rank(limit=50)]
    for position, term in enumerate(ranked):
        assert not any(term.overlaps(other) for other in ranked[:position])
    # Key phrases are noun phrases, code terms and names: never a verb or a stop word.
    assert not surfaces & {"is", "the", "runs", "because", "distributes"}
    (axis,) = index.terms_in_text("what is the main axis?")
    assert axis.surface == "main axis"
    assert index.docs_with("main axis") and all(
        index.says(chunk, "main axis") for chunk in index.docs_with("main axis")
    )


async def test_the_ladder_never_leaks_and_climbs(offline_server: RunningServer) -> None:
    corpus = await demo_corpus(offline_server)
    index = corpus.index
    rng = random.Random(7)
    words = sorted({word for hit in corpus.chunks.values() for word in re.findall(r"[A-Za-z][\w-]{2,}", hit.text)})
    phrases = [phrase.surface for phrase in index.phrases.phrases]
    checked = 0
    for video in corpus.videos:
        chunks = corpus.chunks_of(video.video_id)
        for position in range(0, int(video.duration_seconds), 20):
            window = [hit for hit in chunks if hit.end_seconds >= position - 60 and hit.start_seconds <= position + 30]
            sentences = [s for hit in window for s in index.sentences_of(hit.chunk_id)]
            forbidden = rng.sample(phrases, 3) + rng.sample(words, 3)
            persona = persona_for(rng.choice(["friendly", "professional", "peer"]), "medium")
            step = choose_step(
                sentences, index, position=position, struggle_keys=[], forbidden=forbidden, persona=persona
            )
            if step is None:
                continue
            texts = {level: hint_text(step, level, persona, forbidden) for level in (QUESTION, NARROW, SCAFFOLD)}
            for level, text in texts.items():
                if text is None:
                    continue
                checked += 1
                assert not any(contains_answer(text, answer) for answer in forbidden), (level, text, forbidden)
                assert text.endswith("?"), text
                assert re.search(r"\d{2}:\d{2}", text)
                if step.key is not None and level < SCAFFOLD:
                    assert not contains_answer(text, step.sentence.text[step.key.start : step.key.end]), text
            assert len({text for text in texts.values() if text}) == len([t for t in texts.values() if t])
    assert checked > 60


async def test_the_ladder_on_one_moment(offline_server: RunningServer) -> None:
    corpus = await demo_corpus(offline_server)
    index = corpus.index
    window = [hit for hit in corpus.chunks_of("react-state-effects") if hit.start_seconds <= 175 <= hit.end_seconds]
    sentences = [s for hit in window for s in index.sentences_of(hit.chunk_id)]
    persona = persona_for("professional", "medium")
    step = choose_step(
        sentences, index, position=175.0, struggle_keys=["second", "argument"], forbidden=[], persona=persona
    )
    assert step is not None
    assert step.sentence.text.startswith("The second argument to useEffect is the dependency array")
    first, second, third = (rung(step, level, persona) for level in (QUESTION, NARROW, SCAFFOLD))
    assert first == "Re-watch 02:52–03:00. What is the second argument to useEffect?".replace(
        "02:52–03:00", first.split(" ")[1].rstrip(".")
    )
    assert "dependency array" not in first and "dependency array" not in second
    assert second.startswith("At 02:") and "“The second argument to useEffect is …”" in second
    assert "_____" in third and "dependency array" not in third and third.endswith("What goes in the blank?")


def test_model_hint_checks() -> None:
    hit = SearchHit("k1", "v1", "c", 0.0, 30.0, "The main axis runs along the flex-direction.", 0.1)
    sources = [Source("c1", hit)]
    assert check_model_hint({"hint": "Where do the axes come from?", "source": "c1"}, sources, [], []) == (
        "Where do the axes come from?",
        sources[0],
    )
    assert "gives away" in str(
        check_model_hint({"hint": "Is it the main axis?", "source": "c1"}, sources, ["main axis"], [])
    )
    assert "no `hint`" in str(check_model_hint({"text": "?"}, sources, [], []))
    assert "empty" in str(check_model_hint({"hint": "  ", "source": "c1"}, sources, [], []))
    assert "longer than" in str(check_model_hint({"hint": "Why? " + "x" * 400, "source": "c1"}, sources, [], []))
    said = StoredSentence(
        "v1", 0, 0.0, 5.0, "one two three four five six seven eight nine ten eleven", (), frozenset(), (), (), True
    )
    copied = {"hint": "Does it say one two three four five six seven eight nine ten?", "source": "c1"}
    assert "copies 10" in str(check_model_hint(copied, sources, [], [said]))
    assert "not one of the excerpts" in str(check_model_hint({"hint": "Why?", "source": "c9"}, sources, [], []))
    assert "more than two sentences" in str(
        check_model_hint({"hint": "Look. Listen. Why?", "source": "c1"}, sources, [], [])
    )

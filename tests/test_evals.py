"""The answer-quality eval (`python -m evals`): its checks reject what they must, its labelled sets are sound,
its rates are what the records say (recomputed here by other paths: in-process search, stored messages), and
a configured model's citations are scored from what the model wrote.

The offline part runs on the real demo course (the DEV set), ingested by the real jobs with the local MiniLM
model, and talks to a real server through the Python client, as `make eval` does, on a subset of the labels
to keep the suite short.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from tutorstream.v1 import chat_service_pb2

from evals.checks import (
    QuizItem,
    check_quiz_item,
    grammar_problems,
    is_noun_phrase,
    is_question_or_directive,
    masked_term,
    mentions_keywords,
    overlaps,
    quiz_quality,
    says_not_covered,
)
from evals.labels import LabelledSet, load_held_out_set, load_labelled_set, read_vtt
from evals.report import Count, EngineResult, Rate, metrics, render_table
from evals.runs import (
    PLAYHEAD_AWAY_SECONDS,
    ChatRecord,
    SearchRecord,
    quiz_on,
    run_chat,
    run_hints,
    run_quizzes,
    run_search,
)
from evals.stack import model_settings, offline_settings, running, seed, student_client
from server.app import TutorstreamServer
from server.embeddings.local import LocalEmbedder
from server.llm.offline import OFFLINE_MODEL
from tests.support.fake_openai import Behavior, FakeOpenAI

LABELLED = load_labelled_set()
HELD_OUT = load_held_out_set()
FLEXBOX = LABELLED.transcripts["flexbox-layout"]
# Measured on the dev set with the offline engine and MiniLM: search 22/25 on direct questions, chat citations
# 17/25 with the playhead two minutes from the answer (citations span the quoted sentences, a few seconds),
# 18/18 unanswerable questions answered honestly, no hint leaks, every quiz question valid. A retrieval that
# ranked chunks at random would put the answer in the top 3 about 3 times in 10 within one video.
MIN_SEARCH_HIT_AT_3 = 0.72
MIN_CHAT_CITATION_ACCURACY = 0.56
MIN_UNANSWERABLE_HONEST = 0.8
MIN_QUIZ_VALIDITY = 0.9


# --- the checks -----------------------------------------------------------------------------------------


def cloze(sentence: str, options: tuple[str, ...], correct: int, **changes: object) -> QuizItem:
    item = QuizItem(
        video_id="flexbox-layout",
        stretch=(0.0, FLEXBOX.duration),
        stem=f"Complete the sentence from the lecture: “{sentence}”",
        options=options,
        scored_correct=tuple(index == correct for index in range(len(options))),
        reported_correct=(correct,) * len(options),
        explanation="The lecture says so.",
        citation_video_id="flexbox-layout",
        citation_start=43.32,
        citation_end=88.11,
        citation_chunk_id="chunk-1",
    )
    return dataclasses.replace(item, **changes)  # type: ignore[arg-type]


MAIN_AXIS = (
    "The _____ property sets the main axis.",
    ("row-reverse", "space-between", "flex-shrink", "flex-direction"),
)


def verdict_of(item: QuizItem, cited_text: str | None = None, video_text: str | None = None) -> tuple[str, ...]:
    cited = FLEXBOX.text_between(item.citation_start, item.citation_end) if cited_text is None else cited_text
    return check_quiz_item(item, cited, FLEXBOX.text if video_text is None else video_text).failures


def test_ranges_overlap_only_when_they_share_time() -> None:
    assert overlaps(10, 20, 15, 30)
    assert overlaps(10, 40, 15, 30)
    assert overlaps(16, 18, 15, 30)
    assert not overlaps(10, 15, 15, 30)
    assert not overlaps(30, 45, 15, 30)
    assert not overlaps(0, 5, 15, 30)


def test_a_question_from_the_lecture_passes_every_check() -> None:
    assert verdict_of(cloze(*MAIN_AXIS, correct=3)) == ()


def test_duplicate_and_empty_options_are_rejected() -> None:
    sentence, _ = MAIN_AXIS
    duplicated = cloze(sentence, ("flex-direction", "space-between", "Flex-Direction ", "flex-shrink"), correct=0)
    assert "two options are the same" in verdict_of(duplicated)
    empty = cloze(sentence, ("flex-direction", "space-between", " ", "flex-shrink"), correct=0)
    assert "an empty option" in verdict_of(empty)
    three = cloze(sentence, ("flex-direction", "space-between", "flex-shrink"), correct=0)
    assert "has 3 options, not 4" in verdict_of(three)


def test_two_correct_options_or_disagreeing_answers_are_rejected() -> None:
    two = cloze(*MAIN_AXIS, correct=3, scored_correct=(False, True, False, True))
    assert any("2 options scored correct" in failure for failure in verdict_of(two))
    disagreeing = cloze(*MAIN_AXIS, correct=3, reported_correct=(3, 3, 1, 3))
    assert any("not exactly one" in failure for failure in verdict_of(disagreeing))


def test_an_answer_the_cited_transcript_does_not_say_is_rejected() -> None:
    sentence, options = MAIN_AXIS
    made_up = cloze(sentence.replace("main axis", "grid tracks"), options, correct=3)
    assert any("filled in is not in the cited transcript" in failure for failure in verdict_of(made_up))
    elsewhere = cloze(*MAIN_AXIS, correct=3, citation_start=300.0, citation_end=340.0)
    assert any("'flex-direction' is not in the cited transcript" in failure for failure in verdict_of(elsewhere))


def test_a_stem_that_gives_the_answer_away_is_rejected() -> None:
    giveaway = cloze("The _____ property (flex-direction) sets the main axis.", MAIN_AXIS[1], correct=3)
    assert "the stem contains the answer" in verdict_of(giveaway)


def test_a_distractor_that_also_completes_the_sentence_is_rejected() -> None:
    lecture = "Use justify-content to align them. Use align-items to align them."
    item = cloze(
        "Use _____ to align them.", ("justify-content", "align-items", "gap", "order"), correct=0, citation_start=0.0
    )
    failures = verdict_of(item, cited_text=lecture, video_text=lecture)
    assert "the distractor 'align-items' also completes the lecture's sentence" in failures


def test_a_citation_outside_the_quizzed_stretch_or_video_is_rejected() -> None:
    outside = cloze(*MAIN_AXIS, correct=3, stretch=(200.0, 300.0))
    assert "cites a range outside the quizzed stretch" in verdict_of(outside)
    other_video = cloze(*MAIN_AXIS, correct=3, citation_video_id="http-caching")
    assert "cites video 'http-caching', not the quizzed video" in verdict_of(other_video)


def test_answers_must_be_noun_phrases_by_spacy() -> None:
    for concept in ("justify-content", "Promise.all", "main axis", "the event loop", "standard error", "p-value"):
        assert is_noun_phrase(concept), concept
    for fragment in ("distributes space", "sets the main axis", "because it is auto", "quickly", "spread out"):
        assert not is_noun_phrase(fragment), fragment


def test_stems_must_be_grammatical() -> None:
    assert grammar_problems("Which term does the lecture use for an object that represents a value?") == []
    assert grammar_problems("Complete the sentence from the lecture: “The _____ sets the main axis.”") == []
    assert "the stem writes a(n)" in grammar_problems("Complete: “it becomes a(n) _____.”")
    assert "an article before the blank tells which option fits" in grammar_problems("“it becomes an _____.”")
    assert "a word is repeated" in grammar_problems("Which of the the options is right?")
    assert "the stem is neither a question nor a quoted sentence" in grammar_problems("Pick one")


def test_distractors_must_be_related_not_synonyms_and_of_the_same_kind() -> None:
    item = cloze(*MAIN_AXIS, correct=3)
    good = quiz_quality(item, 3, [0.5, 0.4, 0.6, 1.0])
    assert good.distractors_plausible and good.answer_is_concept and good.grammatical
    synonym = quiz_quality(item, 3, [0.95, 0.4, 0.6, 1.0])
    assert not synonym.distractors_plausible and "synonym" in synonym.problems[0]
    unrelated = quiz_quality(item, 3, [0.02, 0.4, 0.6, 1.0])
    assert not unrelated.distractors_plausible and "unrelated" in unrelated.problems[0]
    mixed = cloze(MAIN_AXIS[0], ("row-reverse", "event loop", "flex-shrink", "flex-direction"), correct=3)
    assert "not the same kind" in quiz_quality(mixed, 3, [0.5, 0.4, 0.6, 1.0]).problems[0]


def test_answers_and_hints_are_read_as_a_student_would() -> None:
    assert says_not_covered("The lecture doesn't seem to cover “floats”: nothing it says answers that.")
    assert says_not_covered("I'm not sure the lecture answers “x” directly — the closest it comes is…")
    assert not says_not_covered("The lecture answers this at 01:43: “justify-content distributes space.”")
    assert is_question_or_directive("Re-watch 01:43–02:05. Why does a flex item overflow?")
    assert is_question_or_directive("Re-watch 01:43–02:05 and listen for the reason.")
    assert not is_question_or_directive("The answer is the main axis.")
    scaffold = "Fill in the blank from 01:45: “The _____ property sets the main axis.” What goes in the blank?"
    assert masked_term(scaffold, "Then: the flex-direction property sets the main axis. Next.") == "flex-direction"


def test_keywords_count_only_as_whole_words() -> None:
    assert mentions_keywords("Use `justify-content` along the Main  Axis.", ["justify-content", "main axis"])
    assert not mentions_keywords("justify-content only", ["justify-content", "main axis"])
    assert not mentions_keywords("flex: 10 means", ["flex: 1"])


def test_the_eval_reads_the_lecture_cues_itself() -> None:
    transcript = read_vtt(
        "v",
        "WEBVTT\n\n1\n00:00:01.000 --> 00:00:02.500\n<v Ann>Hello</v>\nthere\n\n2\n"
        "00:01:02.000 --> 00:01:04.000\nagain\n",
        70.0,
    )
    assert [(cue.start, cue.end, cue.text) for cue in transcript.cues] == [
        (1.0, 2.5, "Hello there"),
        (62.0, 64.0, "again"),
    ]
    assert transcript.text_between(2.0, 62.5) == "Hello there again"
    assert transcript.text_between(3.0, 60.0) == ""


@pytest.mark.parametrize("labelled", [LABELLED, HELD_OUT], ids=["dev", "held-out"])
def test_the_labelled_sets_are_sound(labelled: LabelledSet) -> None:
    durations = {video: transcript.duration for video, transcript in labelled.transcripts.items()}
    ids = [q.question_id for q in labelled.questions] + [p.question.question_id for p in labelled.paraphrased]
    ids += [u.question_id for u in labelled.unanswerable] + [f.follow_up_id for f in labelled.follow_ups]
    ids += [m.moment_id for m in labelled.hint_moments] + [s.stretch_id for s in labelled.quizzes]
    assert len(ids) == len(set(ids))
    assert len(labelled.paraphrased) >= 20 and len(labelled.unanswerable) >= 10 and len(labelled.hint_moments) >= 12
    for item in labelled.paraphrased:
        question = item.question
        assert 0 <= question.expected_start < question.expected_end <= durations[question.video_id]
        # Asked with the playhead at least two minutes from the answer.
        distance = max(question.expected_start - item.playhead, item.playhead - question.expected_end)
        assert distance >= PLAYHEAD_AWAY_SECONDS, question.question_id
    for moment in labelled.hint_moments:
        assert 0 <= moment.expected_start < moment.expected_end <= durations[moment.video_id]
    for stretch in labelled.quizzes:
        assert stretch.video_id in durations
        if stretch.start is not None and stretch.end is not None:
            assert 0 <= stretch.start < stretch.end <= durations[stretch.video_id]


def test_the_held_out_course_is_another_domain() -> None:
    dev_words = set(re.findall(r"[a-z]{5,}", LABELLED.course.title.lower() + " ".join(LABELLED.transcripts)))
    assert HELD_OUT.course_id != LABELLED.course_id
    assert not dev_words & set(re.findall(r"[a-z]{5,}", HELD_OUT.course.title.lower()))
    assert len(HELD_OUT.course.videos) >= 3


# --- the offline engine, end to end ---------------------------------------------------------------------


@dataclasses.dataclass
class OfflineRun:
    server: TutorstreamServer
    target: str
    result: EngineResult


@pytest.fixture(scope="module")
async def eval_stack(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str, local_embedder: LocalEmbedder
) -> AsyncIterator[tuple[Path, str, LocalEmbedder]]:
    data_dir = tmp_path_factory.mktemp("eval")
    settings = offline_settings(data_dir, module_database_url)
    async with running(settings, local_embedder) as (server, _):
        await seed(server)
    yield data_dir, module_database_url, local_embedder


@pytest.fixture(scope="module")
async def offline_run(eval_stack: tuple[Path, str, LocalEmbedder]) -> AsyncIterator[OfflineRun]:
    data_dir, url, embedder = eval_stack
    settings = offline_settings(data_dir, url)
    # A subset keeps the run short; `python -m evals` runs everything on both courses.
    labelled = dataclasses.replace(
        LABELLED,
        paraphrased=LABELLED.paraphrased[:10],
        follow_ups=LABELLED.follow_ups[:3],
        hint_moments=LABELLED.hint_moments[:5],
        quizzes=tuple(stretch for stretch in LABELLED.quizzes if stretch.start is None),
    )

    def embed(texts: object) -> np.typing.NDArray[np.float32]:
        return embedder.raw_encode(list(texts))  # type: ignore[call-overload]

    async with running(settings, embedder) as (server, target):
        async with student_client(settings, target) as client:
            result = EngineResult(
                "offline",
                OFFLINE_MODEL,
                "dev",
                tuple(await run_search(client, labelled)),
                tuple(await run_chat(client, labelled, playheads=("elsewhere",))),
                tuple(await run_hints(lambda user: student_client(settings, target, user), labelled)),
                tuple(await run_quizzes(client, labelled, embed)),
            )
        yield OfflineRun(server, target, result)


def answered(top: tuple[tuple[str, float, float], ...], question_id: str) -> bool:
    questions = [*LABELLED.questions, *(item.question for item in LABELLED.paraphrased)]
    question = next(q for q in questions if q.question_id == question_id)
    return any(
        video == question.video_id and start < question.expected_end and end > question.expected_start
        for video, start, end in top
    )


async def test_search_hit_at_3_matches_the_in_process_search(offline_run: OfflineRun) -> None:
    search = offline_run.server.runtime.search
    records: list[SearchRecord] = list(offline_run.result.search)
    assert len(records) == 2 * (len(LABELLED.questions) + 10)
    for record in records:
        questions = [*LABELLED.questions, *(item.question for item in LABELLED.paraphrased)]
        question = next(q for q in questions if q.question_id == record.question_id)
        if record.scope == "course":
            hits = await search.search(question.question, course_id=LABELLED.course_id, limit=3)
        else:
            hits = await search.search(question.question, video_id=question.video_id, limit=3)
        top = tuple((hit.video_id, hit.start_seconds, hit.end_seconds) for hit in hits)
        assert record.top == top
        assert record.hit == answered(top, record.question_id)
    rate = metrics(offline_run.result)["search hit@3, course scope, direct questions"]
    assert isinstance(rate, Rate) and rate.total == len(LABELLED.questions)
    assert rate.value >= MIN_SEARCH_HIT_AT_3, rate.shown()


async def test_chat_rates_match_the_stored_answers(offline_run: OfflineRun) -> None:
    chats: list[ChatRecord] = list(offline_run.result.chat)
    settings = offline_run.server.settings
    cited = honest = 0
    async with student_client(settings, offline_run.target) as client:
        for record in chats:
            messages = await client.list_messages(record.session)
            stored = messages[-1]
            assert stored.role == chat_service_pb2.MESSAGE_ROLE_ASSISTANT
            assert stored.model == record.model == OFFLINE_MODEL
            assert stored.content == record.answer
            ranges = tuple((c.video_id, c.start_seconds, c.end_seconds) for c in stored.citations)
            if record.kind == "direct":
                assert record.cites_expected == answered(ranges, record.question_id)
                cited += answered(ranges, record.question_id)
            if record.kind == "unanswerable":
                assert record.says_not_covered == says_not_covered(stored.content)
                honest += says_not_covered(stored.content)
    rates = metrics(offline_run.result)
    direct = rates["chat citation accuracy, direct, playhead 2 min away"]
    assert direct == Rate(cited, len(LABELLED.questions))
    assert direct.value >= MIN_CHAT_CITATION_ACCURACY, direct.shown()
    unanswerable = rates["unanswerable questions answered honestly"]
    assert unanswerable == Rate(honest, len(LABELLED.unanswerable))
    assert unanswerable.value >= MIN_UNANSWERABLE_HONEST, unanswerable.shown()


def test_hints_never_leak_and_climb(offline_run: OfflineRun) -> None:
    hints = offline_run.result.hints
    assert len(hints) == 5
    rates = metrics(offline_run.result)
    assert rates["hints giving away a quiz answer or the blanked term"] == Count(0, 5)
    assert rates["hints that ask a question or say what to do"] == Rate(5, 5)
    assert all(record.levels[0] == 1 for record in hints)
    assert rates["repeated hint climbs a rung with a new text (1 → 2 → 3)"] == Rate(
        sum(1 for record in hints if record.levels == (1, 2, 3) and len(set(record.hints)) == 3), 5
    )


def test_quiz_checks_count_every_delivered_question(offline_run: OfflineRun) -> None:
    quizzes = list(offline_run.result.quizzes)
    assert [quiz.stretch_id for quiz in quizzes] == [f"{video.video_id}-whole" for video in LABELLED.course.videos]
    items = [entry for quiz in quizzes for entry in quiz.items]
    assert all(quiz.model == OFFLINE_MODEL for quiz in quizzes)
    assert all(len(item.options) == 4 and sum(item.scored_correct) >= 1 for item, _, _ in items)
    assert all(quality is not None for _, _, quality in items)
    rates = metrics(offline_run.result)
    valid = sum(1 for _, verdict, _ in items if verdict.valid)
    assert rates["quiz validity (valid / generated questions)"] == Rate(valid, len(items))
    assert rates["quiz questions generated / asked for"] == Rate(len(items), sum(quiz.asked for quiz in quizzes))
    assert rates["questions sharing an answer within a quiz"] == Count(0, len(quizzes))
    validity = rates["quiz validity (valid / generated questions)"]
    assert isinstance(validity, Rate) and validity.value >= MIN_QUIZ_VALIDITY
    table = render_table([offline_run.result])
    assert re.search(r"\| search hit@3, course scope, direct questions +\| \d\.\d\d \(\d+/25\) +\|", table), table


# --- a configured model ---------------------------------------------------------------------------------

_CHUNK_TAG = re.compile(r'<transcript_chunk id="(c\d+)" video="([^"]+)" start="(\d+):(\d+)" end="(\d+):(\d+)"')


def prompt_chunks(system_prompt: str) -> dict[str, tuple[str, float, float]]:
    """Label -> (video, start, end) of the excerpts in a chat prompt (times to the whole second)."""
    return {
        label: (video, int(m1) * 60 + int(s1), int(m2) * 60 + int(s2))
        for label, video, m1, s1, m2, s2 in _CHUNK_TAG.findall(system_prompt)
    }


async def test_a_models_citations_are_scored_from_what_it_wrote(
    eval_stack: tuple[Path, str, LocalEmbedder], fake_openai: FakeOpenAI
) -> None:
    data_dir, url, embedder = eval_stack
    settings = model_settings(data_dir, url, openai_api_key=fake_openai.api_key, openai_base_url=fake_openai.base_url)
    assert settings is not None and settings.chat_model == "gpt-4o-mini"
    question = next(q for q in LABELLED.questions if q.question_id == "q13")
    labelled: LabelledSet = dataclasses.replace(
        LABELLED, questions=(question, question), paraphrased=(), unanswerable=(), follow_ups=()
    )
    async with running(settings, embedder) as (_, target), student_client(settings, target) as client:
        # First see which excerpts the prompt offers for this question (it is the same every time).
        probe = await run_chat(client, dataclasses.replace(labelled, questions=(question,)), playheads=("elsewhere",))
        assert probe[0].citations == ()
        chunks = prompt_chunks(fake_openai.chat_requests[-1].body["messages"][0]["content"])
        right = [
            label
            for label, (video, start, end) in chunks.items()
            if video == question.video_id
            and overlaps(start + 1, end - 1, question.expected_start, question.expected_end)
        ]
        wrong = [
            label
            for label, (video, start, end) in chunks.items()
            if not (
                video == question.video_id
                and overlaps(start - 1, end + 1, question.expected_start, question.expected_end)
            )
        ]
        assert right and wrong, chunks
        fake_openai.reset()
        fake_openai.enqueue_chat(
            Behavior(content=f"The event loop runs callbacks when the call stack is empty [{right[0]}]."),
            Behavior(content=f"The event loop renders the page [{wrong[0]}]."),
        )
        records = await run_chat(client, labelled, playheads=("elsewhere",))
        assert len(fake_openai.chat_requests) == 2
        # A quiz the model gets wrong twice is written by the offline generator, and the row says so.
        fake_openai.enqueue_chat(Behavior(json_content={"questions": []}), Behavior(json_content={"questions": []}))
        stretch = next(stretch for stretch in LABELLED.quizzes if stretch.stretch_id == "async-javascript-first-half")
        quiz = await quiz_on(client, LABELLED, stretch)
    assert len(fake_openai.chat_requests) == 4
    assert [record.model for record in records] == ["gpt-4o-mini", "gpt-4o-mini"]
    assert [record.fallback for record in records] == [False, False]
    assert [record.cites_expected for record in records] == [True, False]
    assert [len(record.citations) for record in records] == [1, 1]
    assert quiz.model == OFFLINE_MODEL and quiz.items
    result = EngineResult("gpt-4o-mini", "gpt-4o-mini", "dev", (), tuple(records), (), (quiz,))
    rates = metrics(result)
    assert rates["chat citation accuracy, direct, playhead 2 min away"] == Rate(1, 2)
    assert rates["quizzes written by this engine"] == Rate(0, 1)
    assert "| dev: gpt-4o-mini" in render_table([result])


def test_no_model_is_configured_without_a_key_or_url(tmp_path: Path) -> None:
    assert model_settings(tmp_path, "postgresql://unused/unused", openai_api_key=None, openai_base_url=None) is None
    keyless = model_settings(
        tmp_path, "postgresql://unused/unused", openai_api_key=None, openai_base_url="http://127.0.0.1:9/v1"
    )
    assert keyless is not None and keyless.llm_enabled

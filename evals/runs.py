"""The eval's calls against a running server, through the Python client, and what each one scored.

Each function returns one record per labelled item; `evals.report` turns records into rates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from tutorstream.v1 import common_pb2
from tutorstream_client.client import AsyncTutorstreamClient, learning_context

from evals.checks import (
    QuizItem,
    QuizQuality,
    Verdict,
    check_quiz_item,
    contains_phrase,
    is_question_or_directive,
    masked_term,
    mentions_keywords,
    overlaps,
    quiz_quality,
    says_not_covered,
)
from evals.labels import HintMoment, LabelledSet, QuizStretch
from server.demo import EvalQuestion

TOP_K = 3
# "after": the student asks right after hearing the answer. "elsewhere": the playhead is two minutes away
# from it, so the chunks around the playhead do not contain it and the answer has to be retrieved.
PLAYHEAD_AFTER_SECONDS = 5.0
PLAYHEAD_AWAY_SECONDS = 120.0
DIFFICULTIES = {
    "easy": common_pb2.DIFFICULTY_EASY,
    "medium": common_pb2.DIFFICULTY_MEDIUM,
    "hard": common_pb2.DIFFICULTY_HARD,
}
# The stretch around a hint moment that a quiz is generated on before the hints are asked for.
HINT_QUIZ_MARGIN_SECONDS = 30.0
# Embeds texts for the eval's own similarity checks (the eval's MiniLM, not the server's).
Embed = Callable[[Sequence[str]], "np.typing.NDArray[np.float32]"]


@dataclass(frozen=True, slots=True)
class SearchRecord:
    question_id: str
    scope: str  # "course" or "video"
    kind: str  # "direct" or "paraphrased"
    hit: bool
    top: tuple[tuple[str, float, float], ...]  # (video, start, end) of the top results


@dataclass(frozen=True, slots=True)
class ChatRecord:
    question_id: str
    kind: str  # "direct", "paraphrased", "unanswerable", "follow-up"
    playhead: str  # "after", "elsewhere" or "labelled"
    session: str  # `sessions/{id}`: the stored question and answer
    answer: str
    citations: tuple[tuple[str, float, float], ...]
    model: str
    fallback: bool
    cites_expected: bool
    mentions_keywords: bool
    says_not_covered: bool
    checks_understanding: bool


@dataclass(frozen=True, slots=True)
class HintRecord:
    moment_id: str
    levels: tuple[int, ...]
    hints: tuple[str, ...]
    grounded: bool  # the first hint's citation overlaps the labelled stretch
    questions_or_directives: bool
    leaks: tuple[str, ...]  # quiz answers (or the scaffold's blanked term, at rungs 1-2) a hint gave away
    climbs: bool  # levels 1, 2, 3 with three different texts


@dataclass(frozen=True, slots=True)
class QuizRecord:
    stretch_id: str
    model: str
    asked: int
    items: tuple[tuple[QuizItem, Verdict, QuizQuality | None], ...]


def citation_hits(citations: Sequence[tuple[str, float, float]], question: EvalQuestion) -> bool:
    """At least one citation is in the question's video and overlaps the expected range."""
    return any(
        video == question.video_id and overlaps(start, end, question.expected_start, question.expected_end)
        for video, start, end in citations
    )


async def run_search(client: AsyncTutorstreamClient, labelled: LabelledSet) -> list[SearchRecord]:
    records: list[SearchRecord] = []
    asked = [("direct", question) for question in labelled.questions]
    asked += [("paraphrased", item.question) for item in labelled.paraphrased]
    for kind, question in asked:
        for scope in ("course", "video"):
            if scope == "course":
                response = await client.search(question.question, course_id=labelled.course_id, limit=TOP_K)
            else:
                response = await client.search(question.question, video_id=question.video_id, limit=TOP_K)
            top = tuple((r.video_id, r.start_seconds, r.end_seconds) for r in response.results[:TOP_K])
            records.append(SearchRecord(question.question_id, scope, kind, citation_hits(top, question), top))
    return records


def playhead(question: EvalQuestion, where: str, duration: float) -> float:
    if where == "after":
        return min(duration, question.expected_end + PLAYHEAD_AFTER_SECONDS)
    if question.expected_start >= PLAYHEAD_AWAY_SECONDS + 30:
        return question.expected_start - PLAYHEAD_AWAY_SECONDS
    return min(duration, question.expected_end + PLAYHEAD_AWAY_SECONDS)


async def _turn(
    client: AsyncTutorstreamClient, session: str, text: str
) -> tuple[str, tuple[tuple[str, float, float], ...], str, bool]:
    parts: list[str] = []
    citations: tuple[tuple[str, float, float], ...] = ()
    model, fallback = "", False
    async for chunk in client.stream_chat(session, text):
        parts.append(chunk.text)
        if chunk.finish_reason:
            citations = tuple((c.video_id, c.start_seconds, c.end_seconds) for c in chunk.citations)
            model, fallback = chunk.model, chunk.fallback
    return "".join(parts), citations, model, fallback


async def ask(
    client: AsyncTutorstreamClient,
    labelled: LabelledSet,
    question: EvalQuestion,
    *,
    kind: str,
    where: str,
    position: float,
    before: str = "",
) -> ChatRecord:
    """One question in a fresh session (after `before`, when a follow-up), so no other answer is in the history."""
    context = learning_context(course_id=labelled.course_id, video_id=question.video_id, position_seconds=position)
    session = await client.create_session(title=f"eval {question.question_id}", context=context)
    if before:
        await _turn(client, session.name, before)
    answer, citations, model, fallback = await _turn(client, session.name, question.question)
    return ChatRecord(
        question_id=question.question_id,
        kind=kind,
        playhead=where,
        session=session.name,
        answer=answer,
        citations=citations,
        model=model,
        fallback=fallback,
        cites_expected=citation_hits(citations, question),
        mentions_keywords=mentions_keywords(answer, question.answer_keywords),
        says_not_covered=says_not_covered(answer),
        checks_understanding="Check yourself:" in answer,
    )


async def run_chat(
    client: AsyncTutorstreamClient, labelled: LabelledSet, *, playheads: Sequence[str] = ("after", "elsewhere")
) -> list[ChatRecord]:
    records: list[ChatRecord] = []
    for where in playheads:
        for question in labelled.questions:
            position = playhead(question, where, labelled.transcripts[question.video_id].duration)
            records.append(await ask(client, labelled, question, kind="direct", where=where, position=position))
    for item in labelled.paraphrased:
        records.append(
            await ask(client, labelled, item.question, kind="paraphrased", where="labelled", position=item.playhead)
        )
    for unanswerable in labelled.unanswerable:
        nowhere = EvalQuestion(unanswerable.question_id, unanswerable.question, unanswerable.video_id, -2.0, -1.0, ())
        records.append(
            await ask(client, labelled, nowhere, kind="unanswerable", where="labelled", position=unanswerable.playhead)
        )
    for follow in labelled.follow_ups:
        records.append(
            await ask(
                client,
                labelled,
                follow.second,
                kind="follow-up",
                where="labelled",
                position=follow.playhead,
                before=follow.first.question,
            )
        )
    return records


async def quiz_on(
    client: AsyncTutorstreamClient, labelled: LabelledSet, stretch: QuizStretch, embed: Embed | None = None
) -> QuizRecord:
    """Generate the quiz, answer every option of every question (each answer its own attempt) to learn which
    options the server scores correct and where it says the answer is, then check each question."""
    transcript = labelled.transcripts[stretch.video_id]
    bounds = (stretch.start, stretch.end) if stretch.start is not None and stretch.end is not None else None
    response = await client.generate_quiz(
        stretch.video_id,
        time_range=bounds,
        question_count=stretch.question_count,
        difficulty=DIFFICULTIES[stretch.difficulty],
    )
    quiz = response.quiz
    span = bounds or (0.0, transcript.duration)
    checked: list[tuple[QuizItem, Verdict, QuizQuality | None]] = []
    for question in quiz.questions:
        results = [
            await client.submit_quiz_answer(
                quiz.name, question.question_id, index, attempt_id=f"eval-{quiz.quiz_id}-{question.question_id}-{index}"
            )
            for index in range(len(question.options))
        ]
        citation = results[0].citation if results else common_pb2.Citation()
        item = QuizItem(
            video_id=stretch.video_id,
            stretch=span,
            stem=question.stem,
            options=tuple(question.options),
            scored_correct=tuple(result.correct for result in results),
            reported_correct=tuple(result.correct_index for result in results),
            explanation=results[0].explanation if results else "",
            citation_video_id=citation.video_id,
            citation_start=citation.start_seconds,
            citation_end=citation.end_seconds,
            citation_chunk_id=citation.chunk_id,
        )
        cited_text = transcript.text_between(citation.start_seconds, citation.end_seconds)
        verdict = check_quiz_item(item, cited_text, transcript.text)
        correct = [index for index, result in enumerate(results) if result.correct]
        quality = None
        if embed is not None and len(correct) == 1:
            vectors = embed(item.options)
            similarities = [float(value) for value in vectors @ vectors[correct[0]]]
            quality = quiz_quality(item, correct[0], similarities)
        checked.append((item, verdict, quality))
    return QuizRecord(stretch.stretch_id, quiz.model, stretch.question_count, tuple(checked))


async def run_quizzes(
    client: AsyncTutorstreamClient, labelled: LabelledSet, embed: Embed | None = None
) -> list[QuizRecord]:
    return [await quiz_on(client, labelled, stretch, embed) for stretch in labelled.quizzes]


async def _quiz_answers(client: AsyncTutorstreamClient, video_id: str, start: float, end: float) -> list[str]:
    """The correct options of a quiz on [start, end], learned by answering (the answer key is never sent)."""
    response = await client.generate_quiz(video_id, time_range=(start, end), question_count=4)
    quiz = response.quiz
    answers: list[str] = []
    for question in quiz.questions:
        result = await client.submit_quiz_answer(
            quiz.name, question.question_id, 0, attempt_id=f"eval-hint-{quiz.quiz_id}-{question.question_id}"
        )
        answers.append(question.options[result.correct_index])
    return answers


async def hint_moment(client: AsyncTutorstreamClient, labelled: LabelledSet, moment: HintMoment) -> HintRecord:
    """A quiz on the moment's stretch first (the hints must not give its answers away), then the same hint
    asked for three times (each must climb a rung)."""
    transcript = labelled.transcripts[moment.video_id]
    start = max(0.0, moment.expected_start - HINT_QUIZ_MARGIN_SECONDS)
    end = min(transcript.duration, moment.expected_end + HINT_QUIZ_MARGIN_SECONDS)
    answers = await _quiz_answers(client, moment.video_id, start, end)
    context = learning_context(course_id=labelled.course_id, video_id=moment.video_id, position_seconds=moment.position)
    responses = [await client.get_hint(context, struggle=moment.struggle) for _ in range(3)]
    hints = tuple(response.hint for response in responses)
    levels = tuple(response.level for response in responses)
    first = responses[0].citation
    grounded = first.video_id == moment.video_id and overlaps(
        first.start_seconds, first.end_seconds, moment.expected_start, moment.expected_end
    )
    leaks = [answer for answer in answers for hint in hints if contains_phrase(hint, answer)]
    blanked = masked_term(hints[-1], transcript.text) if levels[-1] == 3 else None
    if blanked:
        leaks += [f"{blanked} (the scaffold's blank)" for hint in hints[:2] if contains_phrase(hint, blanked)]
    return HintRecord(
        moment_id=moment.moment_id,
        levels=levels,
        hints=hints,
        grounded=grounded,
        questions_or_directives=all(is_question_or_directive(hint) for hint in hints),
        leaks=tuple(dict.fromkeys(leaks)),
        climbs=levels == (1, 2, 3) and len(set(hints)) == 3,
    )


async def run_hints(student: Callable[[str], AsyncTutorstreamClient], labelled: LabelledSet) -> list[HintRecord]:
    """Each moment asked by a student of its own: a hint ladder is per student and moment."""
    records: list[HintRecord] = []
    for moment in labelled.hint_moments:
        async with student(f"hint-{labelled.name}-{moment.moment_id}") as client:
            records.append(await hint_moment(client, labelled, moment))
    return records

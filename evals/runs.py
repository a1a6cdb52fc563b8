"""The eval's calls against a running server, through the Python client, and what each one scored.

Each function returns one record per labelled item; `evals.report` turns records into rates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tutorstream.v1 import common_pb2
from tutorstream_client.client import AsyncTutorstreamClient, learning_context

from evals.checks import QuizItem, Verdict, check_quiz_item, mentions_keywords, overlaps
from evals.labels import LabelledSet, QuizStretch
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


@dataclass(frozen=True, slots=True)
class SearchRecord:
    question_id: str
    scope: str  # "course" or "video"
    hit: bool
    top: tuple[tuple[str, float, float], ...]  # (video, start, end) of the top results


@dataclass(frozen=True, slots=True)
class ChatRecord:
    question_id: str
    playhead: str  # "after" or "elsewhere"
    session: str  # `sessions/{id}`: the stored question and answer
    answer: str
    citations: tuple[tuple[str, float, float], ...]
    model: str
    fallback: bool
    cites_expected: bool
    mentions_keywords: bool


@dataclass(frozen=True, slots=True)
class QuizRecord:
    stretch_id: str
    model: str
    asked: int
    items: tuple[tuple[QuizItem, Verdict], ...]


def citation_hits(citations: Sequence[tuple[str, float, float]], question: EvalQuestion) -> bool:
    """At least one citation is in the question's video and overlaps the expected range."""
    return any(
        video == question.video_id and overlaps(start, end, question.expected_start, question.expected_end)
        for video, start, end in citations
    )


async def run_search(client: AsyncTutorstreamClient, labelled: LabelledSet) -> list[SearchRecord]:
    records: list[SearchRecord] = []
    for question in labelled.questions:
        for scope in ("course", "video"):
            if scope == "course":
                response = await client.search(question.question, course_id=labelled.course_id, limit=TOP_K)
            else:
                response = await client.search(question.question, video_id=question.video_id, limit=TOP_K)
            top = tuple((r.video_id, r.start_seconds, r.end_seconds) for r in response.results[:TOP_K])
            records.append(SearchRecord(question.question_id, scope, citation_hits(top, question), top))
    return records


def playhead(question: EvalQuestion, where: str, duration: float) -> float:
    if where == "after":
        return min(duration, question.expected_end + PLAYHEAD_AFTER_SECONDS)
    if question.expected_start >= PLAYHEAD_AWAY_SECONDS + 30:
        return question.expected_start - PLAYHEAD_AWAY_SECONDS
    return min(duration, question.expected_end + PLAYHEAD_AWAY_SECONDS)


async def ask(client: AsyncTutorstreamClient, labelled: LabelledSet, question: EvalQuestion, where: str) -> ChatRecord:
    """One question in a fresh session, so no earlier answer is in the history."""
    duration = labelled.transcripts[question.video_id].duration
    context = learning_context(
        course_id=labelled.course_id,
        video_id=question.video_id,
        position_seconds=playhead(question, where, duration),
    )
    session = await client.create_session(title=f"eval {question.question_id}", context=context)
    text: list[str] = []
    citations: tuple[tuple[str, float, float], ...] = ()
    model, fallback = "", False
    async for chunk in client.stream_chat(session.name, question.question):
        text.append(chunk.text)
        if chunk.finish_reason:
            citations = tuple((c.video_id, c.start_seconds, c.end_seconds) for c in chunk.citations)
            model, fallback = chunk.model, chunk.fallback
    answer = "".join(text)
    return ChatRecord(
        question_id=question.question_id,
        playhead=where,
        session=session.name,
        answer=answer,
        citations=citations,
        model=model,
        fallback=fallback,
        cites_expected=citation_hits(citations, question),
        mentions_keywords=mentions_keywords(answer, question.answer_keywords),
    )


async def run_chat(
    client: AsyncTutorstreamClient, labelled: LabelledSet, *, playheads: Sequence[str] = ("after", "elsewhere")
) -> list[ChatRecord]:
    return [await ask(client, labelled, question, where) for where in playheads for question in labelled.questions]


async def quiz_on(client: AsyncTutorstreamClient, labelled: LabelledSet, stretch: QuizStretch) -> QuizRecord:
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
    checked: list[tuple[QuizItem, Verdict]] = []
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
        checked.append((item, check_quiz_item(item, cited_text, transcript.text)))
    return QuizRecord(stretch.stretch_id, quiz.model, stretch.question_count, tuple(checked))


async def run_quizzes(client: AsyncTutorstreamClient, labelled: LabelledSet) -> list[QuizRecord]:
    return [await quiz_on(client, labelled, stretch) for stretch in labelled.quizzes]

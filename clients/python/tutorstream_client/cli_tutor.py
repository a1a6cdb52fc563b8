"""Tutor commands: chat (streamed to the terminal), hint, quiz (interactive)."""

from __future__ import annotations

import enum
import sys
from collections.abc import Sequence
from typing import Annotated

import typer
from tutorstream.v1 import chat_service_pb2, common_pb2

from tutorstream_client.cli_common import (
    EXIT_INVALID,
    TargetOption,
    TokenOption,
    app,
    ask_line,
    err,
    fail,
    out,
    run,
)
from tutorstream_client.client import AsyncTutorstreamClient, learning_context
from tutorstream_client.timefmt import clock_range, parse_clock, parse_range

LETTERS = "ABCD"
QUOTE_CHARACTERS = 90

VideoOption = Annotated[str, typer.Option("--video", help="Video id.")]
CourseOption = Annotated[str, typer.Option("--course", help="Course id.")]
AtOption = Annotated[str, typer.Option("--at", help="Playhead, e.g. 2:15.")]
SelectOption = Annotated[str | None, typer.Option("--select", help="Selected range, e.g. 1:00-1:45.")]


def _context(video: str, course: str, at: str, select: str | None) -> common_pb2.LearningContext:
    try:
        position = parse_clock(at)
        selected = parse_range(select) if select else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    return learning_context(video_id=video, course_id=course, position_seconds=position, selected_range=selected)


def citation_line(number: int, citation: common_pb2.Citation) -> str:
    quoted = " ".join(citation.quoted_text.split())
    if len(quoted) > QUOTE_CHARACTERS:
        quoted = quoted[: QUOTE_CHARACTERS - 1].rstrip() + "…"
    where = clock_range(citation.start_seconds, citation.end_seconds)
    return f"  [{number}] {where}  {citation.video_id}" + (f"  “{quoted}”" if quoted else "")


def print_citations(citations: Sequence[common_pb2.Citation]) -> None:
    for number, citation in enumerate(citations, start=1):
        out.print(citation_line(number, citation), markup=False)


async def _turn(
    client: AsyncTutorstreamClient, session: str, message: str, context: common_pb2.LearningContext
) -> None:
    final: chat_service_pb2.StreamChatResponse | None = None
    async for chunk in client.stream_chat(session, message, context=context):
        if chunk.text:
            sys.stdout.write(chunk.text)
            sys.stdout.flush()
        if chunk.finish_reason != chat_service_pb2.FINISH_REASON_UNSPECIFIED:
            final = chunk
    sys.stdout.write("\n")
    sys.stdout.flush()
    if final is None:
        return
    print_citations(final.citations)
    facts = [final.model, f"{final.usage.total_tokens} tokens"]
    if final.cached:
        facts.append("cached")
    if final.fallback:
        facts.append("offline engine (model unavailable)")
    reason = chat_service_pb2.FinishReason.Name(final.finish_reason).removeprefix("FINISH_REASON_").lower()
    if reason != "stop":
        facts.append(f"finish: {reason}")
    err.print(" · ".join(f for f in facts if f), style="dim")


@app.command()
def chat(
    message: Annotated[str | None, typer.Argument(help="Your question; omitted: an interactive session.")] = None,
    video: VideoOption = "",
    course: CourseOption = "",
    at: AtOption = "0",
    select: SelectOption = None,
    session: Annotated[str | None, typer.Option(help="Continue `sessions/...` instead of a new one.")] = None,
    title: Annotated[str, typer.Option(help="Title of a new session.")] = "",
    target: TargetOption = None,
    token: TokenOption = None,
) -> None:
    """Ask the tutor; the answer streams into the terminal, citations follow as mm:ss ranges."""
    context = _context(video, course, at, select)

    async def work(client: AsyncTutorstreamClient) -> None:
        name = session
        if name is None:
            created = await client.create_session(title=title or f"cli {video}".strip(), context=context)
            name = created.name
            err.print(f"session {name}", style="dim")
        if message is not None:
            await _turn(client, name, message, context)
            return
        while True:
            try:
                line = (await ask_line("you> ")).strip()
            except EOFError:
                return
            if line in ("/quit", "/exit"):
                return
            if line:
                await _turn(client, name, line, context)

    run(target, token, work)


@app.command()
def hint(
    video: VideoOption,
    at: AtOption,
    course: CourseOption = "",
    select: SelectOption = None,
    struggle: Annotated[str, typer.Option(help="What you find hard, in your words.")] = "",
    target: TargetOption = None,
    token: TokenOption = None,
) -> None:
    """A Socratic hint about the lecture around the playhead."""
    context = _context(video, course, at, select)
    response = run(target, token, lambda client: client.get_hint(context, struggle=struggle))
    out.print(response.hint, markup=False)
    if response.HasField("citation"):
        print_citations([response.citation])
    err.print(f"confidence {response.confidence:.0%} · {response.model}", style="dim")


class DifficultyChoice(enum.StrEnum):
    EASY = "easy"
    MEDIUM = "medium"
    HARD = "hard"


def _answers(text: str | None) -> list[int] | None:
    if text is None:
        return None
    picked = [part.strip().upper() for part in text.split(",") if part.strip()]
    if any(part not in LETTERS for part in picked):
        raise typer.BadParameter("answers are letters A-D separated by commas", param_hint="--answers")
    return [LETTERS.index(part) for part in picked]


async def _ask(number: int) -> int:
    while True:
        try:
            reply = (await ask_line(f"answer {number} (A-D)> ")).strip().upper()
        except EOFError as exc:
            raise fail("no answer given (stdin closed)", EXIT_INVALID) from exc
        if len(reply) == 1 and reply in LETTERS:
            return LETTERS.index(reply)
        err.print("type A, B, C or D")


@app.command()
def quiz(
    video: VideoOption,
    time_range: Annotated[
        str | None, typer.Option("--range", help="Stretch to quiz on, e.g. 0:00-3:00 (default: whole video).")
    ] = None,
    questions: Annotated[int, typer.Option(min=1, max=10)] = 3,
    difficulty: Annotated[DifficultyChoice, typer.Option()] = DifficultyChoice.MEDIUM,
    answers: Annotated[
        str | None, typer.Option(help="Answer without prompting, e.g. A,C,B (one letter per question).")
    ] = None,
    target: TargetOption = None,
    token: TokenOption = None,
) -> None:
    """A multiple-choice quiz on a stretch of a video, answered in the terminal."""
    try:
        chosen_range = parse_range(time_range) if time_range else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--range") from exc
    scripted = _answers(answers)

    async def work(client: AsyncTutorstreamClient) -> tuple[int, int]:
        generated = await client.generate_quiz(
            video,
            time_range=chosen_range,
            question_count=questions,
            difficulty=common_pb2.Difficulty.Value(f"DIFFICULTY_{difficulty.name}"),
        )
        quiz_message = generated.quiz
        where = clock_range(quiz_message.range.start_seconds, quiz_message.range.end_seconds)
        out.print(f"Quiz on {quiz_message.video_id} {where} ({len(quiz_message.questions)} questions)")
        correct = 0
        for number, question in enumerate(quiz_message.questions, start=1):
            out.print(f"\n{number}. {question.stem}", markup=False)
            for letter, option in zip(LETTERS, question.options, strict=False):
                out.print(f"   {letter}. {option}", markup=False)
            if scripted is not None and number <= len(scripted):
                choice = scripted[number - 1]
                out.print(f"answer {number}> {LETTERS[choice]}")
            else:
                choice = await _ask(number)
            result = await client.submit_quiz_answer(quiz_message.name, question.question_id, choice)
            correct += int(result.correct)
            verdict = "correct" if result.correct else f"not quite — the answer is {LETTERS[result.correct_index]}"
            out.print(f"   {verdict}. {result.explanation}", markup=False)
            if result.HasField("citation"):
                print_citations([result.citation])
        return correct, len(quiz_message.questions)

    correct, total = run(target, token, work)
    out.print(f"\nScore: {correct}/{total}")

"""Content commands: ingest (with a progress bar fed by WatchIngestJob), search, preferences."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from tutorstream.v1 import agent_service_pb2, common_pb2, transcript_service_pb2

from tutorstream_client.cli_common import EXIT_FAILED, TargetOption, TokenOption, app, err, fail, out, run
from tutorstream_client.client import FORMATS, AsyncTutorstreamClient
from tutorstream_client.timefmt import clock_range, parse_range

SUCCEEDED = transcript_service_pb2.INGEST_JOB_STATE_SUCCEEDED
FAILED = transcript_service_pb2.INGEST_JOB_STATE_FAILED


class TranscriptFormat(enum.StrEnum):
    AUTO = "auto"
    WEBVTT = "webvtt"
    SRT = "srt"
    JSON = "json"
    TEXT = "text"


_FORMAT_VALUES = {
    TranscriptFormat.WEBVTT: transcript_service_pb2.TRANSCRIPT_FORMAT_WEBVTT,
    TranscriptFormat.SRT: transcript_service_pb2.TRANSCRIPT_FORMAT_SRT,
    TranscriptFormat.JSON: transcript_service_pb2.TRANSCRIPT_FORMAT_JSON_SEGMENTS,
    TranscriptFormat.TEXT: transcript_service_pb2.TRANSCRIPT_FORMAT_PLAIN_TEXT,
}


def enum_word(enum_type: object, value: int, prefix: str) -> str:
    """INGEST_STAGE_EMBEDDING -> "embedding"."""
    name: str = enum_type.Name(value)  # type: ignore[attr-defined]
    return name.removeprefix(prefix).lower()


def _format_for(path: Path, chosen: TranscriptFormat) -> transcript_service_pb2.TranscriptFormat.ValueType:
    if chosen is not TranscriptFormat.AUTO:
        return _FORMAT_VALUES[chosen]
    return FORMATS.get(path.suffix.lower(), transcript_service_pb2.TRANSCRIPT_FORMAT_PLAIN_TEXT)


async def _follow(
    client: AsyncTutorstreamClient, job: transcript_service_pb2.IngestJob
) -> transcript_service_pb2.IngestJob:
    columns = (
        TextColumn("{task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err) as progress:
        task = progress.add_task(enum_word(transcript_service_pb2.IngestStage, job.stage, "INGEST_STAGE_"), total=None)
        last = job
        if job.state in (SUCCEEDED, FAILED):
            return job
        async for update in client.watch_ingest_job(job.name):
            last = update
            stage = enum_word(transcript_service_pb2.IngestStage, update.stage, "INGEST_STAGE_")
            if update.state == transcript_service_pb2.INGEST_JOB_STATE_QUEUED:
                stage = "queued"
            progress.update(
                task,
                description=stage,
                total=update.total_units or None,
                completed=update.completed_units,
            )
            if update.state in (SUCCEEDED, FAILED):
                if update.state == SUCCEEDED:
                    progress.update(task, total=update.total_units or 1, completed=update.total_units or 1)
                break
    return last


@app.command()
def ingest(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="Transcript file.")],
    video: Annotated[str, typer.Option("--video", help="Video id.")],
    course: Annotated[str, typer.Option("--course", help="Course id.")],
    title: Annotated[str, typer.Option(help="Video title.")] = "",
    transcript_format: Annotated[
        TranscriptFormat, typer.Option("--format", help="auto: from the file extension.")
    ] = TranscriptFormat.AUTO,
    language: Annotated[str, typer.Option(help="BCP-47 language tag, e.g. en.")] = "",
    duration: Annotated[float, typer.Option(help="Video length in seconds (plain text timing).")] = 0.0,
    wait: Annotated[bool, typer.Option(help="Follow the job until it ends.")] = True,
    target: TargetOption = None,
    token: TokenOption = None,
) -> None:
    """Upload a transcript (WebVTT, SRT, JSON segments or plain text) and follow its ingest job."""
    content = file.read_text(encoding="utf-8")

    async def work(client: AsyncTutorstreamClient) -> transcript_service_pb2.IngestJob:
        job = await client.ingest_transcript(
            video_id=video,
            course_id=course,
            content=content,
            transcript_format=_format_for(file, transcript_format),
            title=title,
            language=language,
            duration_seconds=duration,
        )
        err.print(f"job {job.name} for {job.video_id}", style="dim")
        return await _follow(client, job) if wait else job

    job = run(target, token, work)
    state = enum_word(transcript_service_pb2.IngestJobState, job.state, "INGEST_JOB_STATE_")
    if job.state == FAILED:
        raise fail(f"ingest of {job.video_id} failed: {job.error_message}", EXIT_FAILED)
    note = " (unchanged: identical to the stored transcript)" if job.unchanged else ""
    out.print(f"{job.video_id}: {state}{note}")
    for warning in job.warnings:
        err.print(f"warning: {warning}", style="yellow", markup=False, highlight=False)


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="Question or keywords.")],
    video: Annotated[str, typer.Option("--video", help="Search one video.")] = "",
    course: Annotated[str, typer.Option("--course", help="Search a whole course.")] = "",
    window: Annotated[str | None, typer.Option(help="Only within START-END of the video, e.g. 1:00-3:00.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=50)] = 5,
    target: TargetOption = None,
    token: TokenOption = None,
) -> None:
    """Hybrid (vector + full-text) search in a video or a course."""
    try:
        time_window = parse_range(window) if window else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--window") from exc
    response = run(
        target,
        token,
        lambda client: client.search(query, video_id=video, course_id=course, limit=limit, time_window=time_window),
    )
    if not response.results:
        out.print("No matches.")
        return
    table = Table("when", "video", "score", "text", show_lines=False)
    for result in response.results:
        table.add_row(
            clock_range(result.start_seconds, result.end_seconds),
            result.video_id,
            f"{result.score:.3f}",
            result.text,
        )
    out.print(table)


class Personality(enum.StrEnum):
    FRIENDLY = "friendly"
    PROFESSIONAL = "professional"
    PEER = "peer"


class Length(enum.StrEnum):
    SHORT = "short"
    MEDIUM = "medium"
    DETAILED = "detailed"


class Frequency(enum.StrEnum):
    OFF = "off"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


@app.command()
def preferences(
    personality: Annotated[Personality | None, typer.Option(help="The tutor's voice.")] = None,
    length: Annotated[Length | None, typer.Option(help="Answer length.")] = None,
    quiz_frequency: Annotated[Frequency | None, typer.Option(help="Quizzes while watching.")] = None,
    auto_hints: Annotated[bool | None, typer.Option(help="Hints while watching.")] = None,
    reflection_prompts: Annotated[bool | None, typer.Option(help="Reflection prompts.")] = None,
    target: TargetOption = None,
    token: TokenOption = None,
) -> None:
    """Show your tutor preferences, or change the ones given as options."""
    update = agent_service_pb2.Preferences()
    fields: list[str] = []
    if personality is not None:
        update.personality = common_pb2.Personality.Value(f"PERSONALITY_{personality.name}")
        fields.append("personality")
    if length is not None:
        update.response_length = common_pb2.ResponseLength.Value(f"RESPONSE_LENGTH_{length.name}")
        fields.append("response_length")
    if quiz_frequency is not None:
        update.quiz_frequency = agent_service_pb2.QuizFrequency.Value(f"QUIZ_FREQUENCY_{quiz_frequency.name}")
        fields.append("quiz_frequency")
    if auto_hints is not None:
        update.auto_hints_enabled = auto_hints
        fields.append("auto_hints_enabled")
    if reflection_prompts is not None:
        update.reflection_prompts_enabled = reflection_prompts
        fields.append("reflection_prompts_enabled")

    async def work(client: AsyncTutorstreamClient) -> agent_service_pb2.Preferences:
        if fields:
            return await client.update_preferences(update, fields)
        return await client.get_preferences()

    stored = run(target, token, work)
    table = Table("preference", "value", show_header=False)
    table.add_row("personality", enum_word(common_pb2.Personality, stored.personality, "PERSONALITY_"))
    table.add_row("response length", enum_word(common_pb2.ResponseLength, stored.response_length, "RESPONSE_LENGTH_"))
    table.add_row(
        "quiz frequency", enum_word(agent_service_pb2.QuizFrequency, stored.quiz_frequency, "QUIZ_FREQUENCY_")
    )
    table.add_row("auto hints", "on" if stored.auto_hints_enabled else "off")
    table.add_row("reflection prompts", "on" if stored.reflection_prompts_enabled else "off")
    out.print(table)

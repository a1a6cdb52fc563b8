"""Progress and analytics commands: watch (replay player events over WatchVideo), usage, analytics video.

An events file has one JSON object per line (blank lines and `#` comments are skipped):

    {"type": "played", "position": 0}
    {"type": "heartbeat", "position": 10, "after": 0.5}
    {"type": "seeked", "from": 95, "to": 60}
    {"type": "rate_changed", "position": 20, "rate": 1.5}

`type` is a VideoEventType without its prefix; `after` waits that many seconds (divided by --speed) before
the event is sent; `position` defaults to `to` for seeks.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from google.protobuf import timestamp_pb2
from rich.table import Table
from tutorstream.v1 import agent_service_pb2, analytics_service_pb2, common_pb2

from tutorstream_client.cli_common import EXIT_INVALID, TargetOption, TokenOption, analytics_app, app, fail, out, run
from tutorstream_client.cli_tutor import citation_line
from tutorstream_client.client import AsyncTutorstreamClient
from tutorstream_client.timefmt import clock, clock_range


@dataclass(frozen=True)
class ScriptedEvent:
    after: float
    event: agent_service_pb2.VideoEvent


def parse_events(text: str, watch_session_id: str) -> list[ScriptedEvent]:
    events: list[ScriptedEvent] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            item: dict[str, Any] = json.loads(stripped)
            kind = f"VIDEO_EVENT_TYPE_{str(item['type']).upper()}"
            event_type = agent_service_pb2.VideoEventType.Value(kind)
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"line {number}: not an event ({exc})") from exc
        seek_to = float(item.get("to", 0.0))
        event = agent_service_pb2.VideoEvent(
            event_id=str(item.get("id") or f"{watch_session_id}-{number}"),
            type=event_type,
            position_seconds=float(item.get("position", seek_to)),
            seek_from_seconds=float(item.get("from", 0.0)),
            seek_to_seconds=seek_to,
            playback_rate=float(item.get("rate", 0.0)),
            intervention_id=str(item.get("intervention_id", "")),
        )
        events.append(ScriptedEvent(after=float(item.get("after", 0.0)), event=event))
    return events


def _intervention_lines(intervention: agent_service_pb2.Intervention) -> list[str]:
    kind = common_pb2.InterventionType.Name(intervention.type).removeprefix("INTERVENTION_TYPE_")
    lines = [f"[{clock(intervention.position_seconds)}] {kind} ({intervention.reason}) {intervention.reason_text}"]
    if intervention.content:
        lines.append(f"  {intervention.content}")
    if intervention.HasField("citation"):
        lines.append(citation_line(1, intervention.citation).replace("[1]", "▶", 1))
    if intervention.quiz:
        lines.append(f"  quiz: {intervention.quiz}")
    return lines


@app.command()
def watch(
    events_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSON Lines of player events.")],
    video: Annotated[str, typer.Option("--video", help="Video id.")],
    course: Annotated[str, typer.Option("--course", help="Course id.")] = "",
    duration: Annotated[float, typer.Option(help="Video length in seconds, if the server lacks it.")] = 0.0,
    speed: Annotated[float, typer.Option(min=0.01, help="Replay speed for the `after` delays.")] = 1.0,
    linger: Annotated[float, typer.Option(min=0, help="Seconds to keep listening after the last event.")] = 5.0,
    max_interventions: Annotated[
        int, typer.Option(min=0, help="Stop after this many interventions (0: no limit).")
    ] = 0,
    target: TargetOption = None,
    token: TokenOption = None,
) -> None:
    """Replay a file of player events over the WatchVideo stream and print the interventions it triggers."""
    watch_session_id = f"cli-{uuid.uuid4().hex[:20]}"
    try:
        scripted = parse_events(events_file.read_text(encoding="utf-8"), watch_session_id)
    except ValueError as exc:
        raise fail(f"{events_file}: {exc}", EXIT_INVALID) from exc
    done = asyncio.Event()

    async def requests() -> AsyncIterator[agent_service_pb2.WatchVideoRequest]:
        yield agent_service_pb2.WatchVideoRequest(
            watch_session_id=watch_session_id, video_id=video, course_id=course, duration_seconds=duration
        )
        for item in scripted:
            if item.after > 0:
                await asyncio.sleep(item.after / speed)
            item.event.event_time.CopyFrom(_now())
            yield agent_service_pb2.WatchVideoRequest(events=[item.event])
        try:
            await asyncio.wait_for(done.wait(), linger)
        except TimeoutError:
            return

    async def work(client: AsyncTutorstreamClient) -> tuple[int, int]:
        interventions = rejections = 0
        async for response in client.watch_video(requests()):
            if response.HasField("intervention"):
                interventions += 1
                for line in _intervention_lines(response.intervention):
                    out.print(line, markup=False)
                if max_interventions and interventions >= max_interventions:
                    done.set()
                    break
            elif response.HasField("rejection"):
                rejections += 1
                out.print(f"rejected {response.rejection.event_id}: {response.rejection.reason}", markup=False)
        return interventions, rejections

    interventions, rejections = run(target, token, work)
    out.print(f"{len(scripted)} events sent · {interventions} interventions · {rejections} rejected")


def _now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp


@app.command()
def usage(target: TargetOption = None, token: TokenOption = None) -> None:
    """Tokens, cost and rate limits: used and remaining."""
    response = run(target, token, lambda client: client.get_usage())
    out.print(f"tier: {response.tier}")
    budgets = Table("window", "used", "limit", "remaining", "cost", "resets", title="token budgets")
    for budget in response.budgets:
        window = analytics_service_pb2.UsageWindow.Name(budget.window).removeprefix("USAGE_WINDOW_").lower()
        resets = budget.reset_time.ToDatetime().strftime("%Y-%m-%d %H:%M UTC") if budget.HasField("reset_time") else ""
        budgets.add_row(
            window,
            str(budget.tokens_used),
            str(budget.tokens_limit),
            str(budget.tokens_remaining),
            f"${budget.cost_usd:.4f}",
            resets,
        )
    out.print(budgets)
    limits = Table("rpc class", "per minute", "remaining", title="rate limits")
    for limit in response.rate_limits:
        limits.add_row(limit.rpc_class, str(limit.limit_per_minute), str(limit.remaining))
    out.print(limits)
    if response.by_model:
        models = Table("model", "operation", "calls", "tokens", "cost", title="this month by model")
        for row in response.by_model:
            models.add_row(
                row.model, row.operation, str(row.calls), str(row.usage.total_tokens), f"${row.usage.cost_usd:.4f}"
            )
        out.print(models)


@analytics_app.command("video")
def analytics_video(
    video: Annotated[str, typer.Argument(help="Video id.")],
    peaks: Annotated[int, typer.Option(min=1, max=50, help="Confusion peaks to show.")] = 5,
    target: TargetOption = None,
    token: TokenOption = None,
) -> None:
    """Where a video confuses students (instructors and services only)."""
    response = run(target, token, lambda client: client.get_video_analytics(video, max_peaks=peaks))
    out.print(f"{response.video_id}: {response.viewers} viewers")
    table = Table(
        "when", "score", "rewatches", "pauses", "hints", "wrong", "students", "transcript", title="confusion peaks"
    )
    for peak in response.confusion_peaks:
        table.add_row(
            clock_range(peak.range.start_seconds, peak.range.end_seconds),
            f"{peak.score:.2f}",
            str(peak.rewatches),
            str(peak.pauses),
            str(peak.hints),
            str(peak.wrong_answers),
            str(peak.students),
            peak.transcript_text[:80],
        )
    out.print(table)
    if response.interventions:
        stats = Table("intervention", "delivered", "accepted", "dismissed", "acceptance", title="interventions")
        for stat in response.interventions:
            stats.add_row(
                common_pb2.InterventionType.Name(stat.type).removeprefix("INTERVENTION_TYPE_").lower(),
                str(stat.delivered),
                str(stat.accepted),
                str(stat.dismissed),
                f"{stat.acceptance_rate:.0%}",
            )
        out.print(stats)

"""The `tutorstream` CLI against a running server with the demo course: exit codes and output a person
reads (citations as mm:ss, progress, decoded error details)."""

from __future__ import annotations

import json
import re
import stat
import uuid
from pathlib import Path

from tests.conftest import RunningServer
from tests.edge.cli import run_cli
from tests.support.clients import token_for

MMSS_RANGE = re.compile(r"\d\d:\d\d–\d\d:\d\d")
DEMO_VIDEO = "flexbox-layout"
DEMO_COURSE = "webdev-101"
DEMO_COURSE = "webdev-101"
VTT = """WEBVTT

00:00:00.000 --> 00:00:06.000
Today we study the water cycle: evaporation, condensation and precipitation.

00:00:06.000 --> 00:00:12.000
Evaporation turns liquid water from oceans and lakes into water vapour.

00:00:12.000 --> 00:00:20.000
Condensation forms clouds when the vapour cools high in the atmosphere.
"""


def student(server: RunningServer) -> tuple[str, str]:
    user = f"cli-{uuid.uuid4().hex[:8]}"
    return user, token_for(server.settings, user)


async def test_login_token_and_logout(demo_server: RunningServer, tmp_path: Path) -> None:
    user, token = student(demo_server)
    config = tmp_path / "config.json"
    login = await run_cli("login", "--token", "-", target=demo_server.target, config_file=config, stdin=token)
    assert login.code == 0, login.output
    assert f"Signed in to {demo_server.target} as {user} (student)" in login.stdout
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert json.loads(config.read_text()) == {"target": demo_server.target, "token": token}

    printed = await run_cli("token", target=demo_server.target, config_file=config)
    assert printed.code == 0 and printed.stdout.strip() == token
    claims = await run_cli("token", "--claims", target=demo_server.target, config_file=config)
    assert claims.stdout.startswith(f"{user} (student)")
    preferences = await run_cli("preferences", target=demo_server.target, config_file=config)
    assert preferences.code == 0, preferences.output

    logout = await run_cli("logout", target=demo_server.target, config_file=config)
    assert logout.code == 0
    after = await run_cli("token", target=demo_server.target, config_file=config)
    assert after.code == 3
    assert "not signed in" in after.stderr


async def test_login_refuses_a_token_the_server_rejects(demo_server: RunningServer, tmp_path: Path) -> None:
    _, token = student(demo_server)
    forged = token[:-4] + "AAAA"
    result = await run_cli("login", "--token", forged, target=demo_server.target, config_file=tmp_path / "c.json")
    assert result.code == 3
    assert "UNAUTHENTICATED: token signature is invalid" in result.stderr
    assert "INVALID_SIGNATURE" in result.stderr
    assert not (tmp_path / "c.json").exists()


async def test_health(demo_server: RunningServer) -> None:
    result = await run_cli("health", target=demo_server.target)
    assert (result.code, result.stdout.strip()) == (0, "SERVING")


async def test_preferences_show_and_change(demo_server: RunningServer) -> None:
    _, token = student(demo_server)
    shown = await run_cli("preferences", target=demo_server.target, token=token)
    assert shown.code == 0
    assert re.search(r"personality\s+│?\s*friendly", shown.stdout), shown.stdout
    changed = await run_cli(
        "preferences", "--personality", "peer", "--no-auto-hints", target=demo_server.target, token=token
    )
    assert changed.code == 0, changed.output
    assert re.search(r"personality\s+│?\s*peer", changed.stdout)
    assert re.search(r"auto hints\s+│?\s*off", changed.stdout)


async def test_ingest_follows_the_job_then_search_finds_it(demo_server: RunningServer, tmp_path: Path) -> None:
    token = token_for(demo_server.settings, "cli-instructor", "instructor")
    video = f"water-{uuid.uuid4().hex[:6]}"
    transcript = tmp_path / "water.vtt"
    transcript.write_text(VTT)
    result = await run_cli(
        "ingest",
        str(transcript),
        "--video",
        video,
        "--course",
        "cli-science",
        "--title",
        "The water cycle",
        target=demo_server.target,
        token=token,
    )
    assert result.code == 0, result.output
    assert f"{video}: succeeded" in result.stdout
    assert "job ingestJobs/" in result.stderr

    assert "warning:" not in result.stderr

    found = await run_cli("search", "how do clouds form", "--video", video, target=demo_server.target, token=token)
    assert found.code == 0, found.output
    assert "00:00–00:20" in found.stdout, found.stdout
    assert "Condensation forms clouds" in found.stdout


async def test_ingest_prints_what_the_job_repaired_or_left_out(demo_server: RunningServer, tmp_path: Path) -> None:
    token = token_for(demo_server.settings, "cli-instructor", "instructor")
    transcript = tmp_path / "music.vtt"
    transcript.write_text(VTT.rstrip("\n") + "\n\n00:00:40.000 --> 00:00:45.000\n[Music]\n")
    result = await run_cli(
        "ingest",
        str(transcript),
        "--video",
        f"music-{uuid.uuid4().hex[:6]}",
        "--course",
        "cli-science",
        target=demo_server.target,
        token=token,
    )
    assert result.code == 0, result.output
    assert "warning: " in result.stderr and "dropped a cue with no text" in result.stderr, result.stderr


async def test_ingest_as_a_student_is_refused(demo_server: RunningServer, tmp_path: Path) -> None:
    _, token = student(demo_server)
    transcript = tmp_path / "t.vtt"
    transcript.write_text(VTT)
    result = await run_cli(
        "ingest", str(transcript), "--video", "v1", "--course", "c1", target=demo_server.target, token=token
    )
    assert result.code == 3
    assert "PERMISSION_DENIED" in result.stderr
    assert "INSTRUCTOR_ROLE_REQUIRED" in result.stderr


async def test_search_the_demo_course(demo_server: RunningServer) -> None:
    _, token = student(demo_server)
    result = await run_cli(
        "search", "how do I center an item", "--course", DEMO_COURSE, target=demo_server.target, token=token
    )
    assert result.code == 0, result.output
    assert MMSS_RANGE.search(result.stdout)
    assert DEMO_VIDEO in result.stdout


async def test_invalid_requests_exit_5_with_field_violations(demo_server: RunningServer) -> None:
    _, token = student(demo_server)
    result = await run_cli("search", "flex", target=demo_server.target, token=token)
    assert result.code == 5, result.output
    assert "INVALID_ARGUMENT" in result.stderr
    assert "video_id" in result.stderr or "course_id" in result.stderr


async def test_bad_time_ranges_are_usage_errors(demo_server: RunningServer) -> None:
    _, token = student(demo_server)
    result = await run_cli(
        "search", "flex", "--video", DEMO_VIDEO, "--window", "3:00-1:00", target=demo_server.target, token=token
    )
    assert result.code == 2
    assert "ends before it starts" in result.stderr


async def test_unreachable_server_exits_7(tmp_path: Path) -> None:
    result = await run_cli("health", target="127.0.0.1:1", limit_seconds=120)
    assert result.code == 7, result.output
    assert "UNAVAILABLE" in result.stderr


async def test_chat_streams_and_prints_citations(demo_server: RunningServer) -> None:
    _, token = student(demo_server)
    result = await run_cli(
        "chat",
        "How do I center an item with flexbox?",
        "--video",
        DEMO_VIDEO,
        "--course",
        DEMO_COURSE,
        "--at",
        "2:00",
        target=demo_server.target,
        token=token,
    )
    assert result.code == 0, result.output
    answer, _, citations = result.stdout.partition("\n  [1] ")
    assert len(answer.split()) >= 5
    assert MMSS_RANGE.match(citations), result.stdout
    assert "session sessions/" in result.stderr


async def test_interactive_chat_reads_questions_from_stdin(demo_server: RunningServer) -> None:
    _, token = student(demo_server)
    result = await run_cli(
        "chat",
        "--video",
        DEMO_VIDEO,
        "--course",
        DEMO_COURSE,
        target=demo_server.target,
        token=token,
        stdin="What does justify-content do?\nAnd align-items?\n",
    )
    assert result.code == 0, result.output
    assert "you> What does justify-content do?\n" in result.stdout
    assert "you> And align-items?\n" in result.stdout
    assert result.stdout.count("  [1] ") == 2


async def test_usage_table(demo_server: RunningServer) -> None:
    _, token = student(demo_server)
    result = await run_cli("usage", target=demo_server.target, token=token)
    assert result.code == 0, result.output
    assert "tier: free" in result.stdout
    assert "token budgets" in result.stdout and "rate limits" in result.stdout
    assert re.search(r"day\s+│?\s*\d+\s+│?\s*100000", result.stdout), result.stdout


async def test_rate_limited_chat_exits_6_with_retry_advice(start_server: object, tmp_path: Path) -> None:
    limited: RunningServer = await start_server(rate_chat_per_minute=1)  # type: ignore[operator]
    token = token_for(limited.settings, "hasty")
    first = await run_cli("chat", "hello there", target=limited.target, token=token)
    assert first.code == 0, first.output
    second = await run_cli("chat", "hello again", target=limited.target, token=token)
    assert second.code == 6, second.output
    assert "RESOURCE_EXHAUSTED" in second.stderr
    assert re.search(r"retry in \d+s", second.stderr), second.stderr


async def test_hint_prints_a_citation(demo_server: RunningServer) -> None:
    _, token = student(demo_server)
    result = await run_cli(
        "hint", "--video", DEMO_VIDEO, "--course", DEMO_COURSE, "--at", "2:30", target=demo_server.target, token=token
    )
    assert result.code == 0, result.output
    hint, _, citation = result.stdout.partition("\n  [1] ")
    assert len(hint.split()) >= 5
    assert MMSS_RANGE.match(citation), result.stdout
    assert "confidence" in result.stderr


async def test_interactive_quiz_reads_answers_and_scores(demo_server: RunningServer) -> None:
    _, token = student(demo_server)
    result = await run_cli(
        "quiz",
        "--video",
        DEMO_VIDEO,
        "--range",
        "0:00-3:00",
        "--questions",
        "2",
        target=demo_server.target,
        token=token,
        stdin="x\nA\nB\n",
    )
    assert result.code == 0, result.output
    assert result.stdout.startswith(f"Quiz on {DEMO_VIDEO} 00:00–03:00")
    assert "   A. " in result.stdout and "   D. " in result.stdout
    assert "type A, B, C or D" in result.stderr
    assert "answer 1 (A-D)> x\nanswer 1 (A-D)> A\n" in result.stdout
    assert "answer 2 (A-D)> B\n" in result.stdout
    assert re.search(r"\nScore: [0-2]/2\n", result.stdout)
    verdicts = re.findall(r"^   (correct|not quite — the answer is [A-D])\.", result.stdout, re.MULTILINE)
    assert len(verdicts) == 2


async def test_quiz_with_scripted_answers(demo_server: RunningServer) -> None:
    _, token = student(demo_server)
    result = await run_cli(
        "quiz", "--video", DEMO_VIDEO, "--questions", "1", "--answers", "c", target=demo_server.target, token=token
    )
    assert result.code == 0, result.output
    assert "answer 1> C" in result.stdout
    assert re.search(r"Score: [01]/1", result.stdout)


async def test_watch_replays_events_and_prints_the_intervention(demo_server: RunningServer, tmp_path: Path) -> None:
    _, token = student(demo_server)
    events = tmp_path / "rewatch.jsonl"
    events.write_text(
        "# play, then jump back over the same stretch twice\n"
        '{"type": "played", "position": 60}\n'
        '{"type": "seeked", "from": 62, "to": 50, "after": 0.2}\n'
        '{"type": "seeked", "from": 58, "to": 48, "after": 0.2}\n'
    )
    result = await run_cli(
        "watch",
        str(events),
        "--video",
        DEMO_VIDEO,
        "--course",
        DEMO_COURSE,
        "--linger",
        "20",
        "--max-interventions",
        "1",
        target=demo_server.target,
        token=token,
    )
    assert result.code == 0, result.output
    assert re.search(r"^\[00:\d\d\] HINT \(REWATCH\) ", result.stdout, re.MULTILINE), result.stdout
    assert "3 events sent · 1 interventions · 0 rejected" in result.stdout


async def test_watch_rejects_a_malformed_events_file(demo_server: RunningServer, tmp_path: Path) -> None:
    _, token = student(demo_server)
    events = tmp_path / "bad.jsonl"
    events.write_text('{"type": "played", "position": 0}\n{"type": "teleported"}\n')
    result = await run_cli("watch", str(events), "--video", DEMO_VIDEO, target=demo_server.target, token=token)
    assert result.code == 5
    assert "line 2: not an event" in result.stderr


async def test_video_analytics_for_instructors_only(demo_server: RunningServer) -> None:
    teacher = token_for(demo_server.settings, "cli-teacher", "instructor", courses=[DEMO_COURSE])
    result = await run_cli("analytics", "video", DEMO_VIDEO, "--peaks", "3", target=demo_server.target, token=teacher)
    assert result.code == 0, result.output
    assert re.match(rf"{DEMO_VIDEO}: \d+ viewers", result.stdout)
    assert "confusion peaks" in result.stdout
    _, token = student(demo_server)
    refused = await run_cli("analytics", "video", DEMO_VIDEO, target=demo_server.target, token=token)
    assert refused.code == 3
    assert "PERMISSION_DENIED" in refused.stderr

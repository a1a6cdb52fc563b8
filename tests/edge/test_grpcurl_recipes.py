"""docs/grpcurl.md runs as written: every recipe, in order, in one bash shell, against a seeded test server
(and Envoy for the edge recipe); each recipe must succeed and show what the doc promises."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import TEST_JWT_SECRET, RunningServer
from tests.edge.support import ROOT, EnvoyProcess, StaticWebServer

DOC = ROOT / "docs" / "grpcurl.md"
RECIPE = re.compile(r"<!-- recipe: ([a-z0-9-]+) -->\n```bash\n(.*?)```", re.DOTALL)
MARK = "### recipe"

# What each recipe's output must contain (besides exiting 0).
EXPECTED: dict[str, list[str]] = {
    "setup": ["tutorstream.v1.ChatService", "tutorstream.v1.AnalyticsService"],
    "health": ['"status": "SERVING"'],
    "describe": ["rpc StreamChat", "message StreamChatResponse"],
    "ingest": ["ingestJobs/"],
    "watch-ingest-job": ["INGEST_JOB_STATE_SUCCEEDED"],
    "get-ingest-job": ["INGEST_JOB_STATE_SUCCEEDED"],
    "course-instructors": ['"name": "courses/science-1/instructors/prof-cal"', "COURSE_ROLE_OWNER"],
    "list-transcripts": ['"video_id": "flexbox-layout"'],
    "get-transcript": ['"title": "CSS Flexbox Layout"', '"cues":'],
    "search": ['"video_id": "flexbox-layout"', '"start_seconds"'],
    "create-session": ["sessions/"],
    "stream-chat": ['"finish_reason": "FINISH_REASON_STOP"', '"citations"'],
    "add-reference": ['"reference_id"', '"text"'],
    "list-messages": ["MESSAGE_ROLE_USER", "MESSAGE_ROLE_ASSISTANT"],
    "list-sessions": ['"title": "Flexbox questions"'],
    "get-preferences": ['"name": "users/alice/preferences"'],
    "update-preferences": ["PERSONALITY_PEER", "RESPONSE_LENGTH_SHORT"],
    "get-hint": ['"hint"', '"citation"'],
    "generate-quiz": ['"questions"', "quizzes/"],
    "submit-quiz-answer": ['"explanation"', '"attempt_id": "grpcurl-attempt-1"'],
    "generate-reflection": ['"guiding_questions"'],
    "generate-learning-path": ['"recommendations"'],
    "watch-video": ['"intervention"'],
    "publish-video-events": ['"accepted_count": 2'],
    "stream-interventions": ["DeadlineExceeded"],
    "get-usage": ['"tier": "free"', '"budgets"'],
    "record-interaction": ['"trigger": "quick_action:explain"'],
    "rate-interaction": ['"rating": 5'],
    "get-user-analytics": ['"agents"'],
    "get-video-analytics": ['"video_id": "flexbox-layout"'],
    "experiments": [
        "EXPERIMENT_STATE_RUNNING",
        '"metric": "first_attempt_correct"',
        "not enough data",
        "EXPERIMENT_STATE_STOPPED",
    ],
    "insights": ['"job_id"'],
    "delete-user-data": ['"deleted"'],
    "error-details": ["Code: InvalidArgument", "colour", "google.rpc.BadRequest", "exit status"],
    "via-envoy": ['"name": "users/alice/preferences"'],
}


def recipes() -> list[tuple[str, str]]:
    return RECIPE.findall(DOC.read_text())


def test_every_recipe_has_expectations_and_every_service_is_covered() -> None:
    names = [name for name, _ in recipes()]
    assert len(names) == len(set(names))
    assert set(names) == set(EXPECTED)
    text = DOC.read_text()
    for service in ("ChatService", "AgentService", "TranscriptService", "AnalyticsService", "Health"):
        assert f".{service}/" in text, service


@dataclass
class RecipeRun:
    outputs: dict[str, str]
    codes: dict[str, int]


@pytest.fixture(scope="module")
async def recipe_run(
    demo_server: RunningServer, tmp_path_factory: pytest.TempPathFactory, static_web: StaticWebServer
) -> AsyncIterator[RecipeRun]:
    workdir = tmp_path_factory.mktemp("recipes")
    envoy = EnvoyProcess(workdir, grpc_port=demo_server.server.port, web_port=static_web.port)
    envoy.start()
    try:
        await envoy.wait_ready()
        yield await run_recipes(workdir, demo_server.target, f"127.0.0.1:{envoy.port}")
    finally:
        envoy.stop()


async def run_recipes(workdir: Path, address: str, edge: str) -> RecipeRun:
    script = ["exec 2>&1", "set -o pipefail"]
    for name, body in recipes():
        script += [f"echo '{MARK} {name}'", body.rstrip(), f'echo "{MARK}-status {name} $?"']
    env = {
        **os.environ,
        "ADDR": address,
        "EDGE": edge,
        "JWT_SECRET": TEST_JWT_SECRET,
        "DATA_DIR": str(workdir),
    }
    process = await asyncio.create_subprocess_exec(
        "bash", "-c", "\n".join(script), cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), 600)
    outputs: dict[str, str] = {}
    codes: dict[str, int] = {}
    current = ""
    for line in stdout.decode().splitlines():
        if line.startswith(f"{MARK}-status "):
            *_, name, code = line.split()
            codes[name] = int(code)
        elif line.startswith(f"{MARK} "):
            current = line.split()[-1]
            outputs[current] = ""
        elif current:
            outputs[current] += line + "\n"
    return RecipeRun(outputs=outputs, codes=codes)


@pytest.mark.parametrize("name", list(EXPECTED))
async def test_recipe(recipe_run: RecipeRun, name: str) -> None:
    output = recipe_run.outputs.get(name, "")
    assert "Unimplemented" not in output, f"{name}: the server does not implement this RPC yet\n{output}"
    assert recipe_run.codes.get(name) == 0, f"{name} exited {recipe_run.codes.get(name)}:\n{output}"
    for expected in EXPECTED[name]:
        assert expected in output, f"{name}: {expected!r} missing from\n{output}"

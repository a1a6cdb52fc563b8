"""`python -m evals` (`make eval`): run the labelled set against the offline engine and, when one is
configured, the OpenAI-compatible model; print one table and write it to evals/results/latest.md.

    python -m evals [--output evals/results/latest.md] [--offline-only]

The model column appears when OPENAI_API_KEY or OPENAI_BASE_URL is set (environment or .env), with CHAT_MODEL
naming the model; a base URL alone is taken to be a server that needs no key.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import logging
import tempfile
import time
from pathlib import Path

from evals.labels import LabelledSet, load_labelled_set
from evals.report import EngineResult, misses, render_table
from evals.runs import run_chat, run_quizzes, run_search
from evals.stack import embedded_database, model_settings, offline_settings, running, seed, student_client
from server.config import Settings
from server.embeddings.local import LocalEmbedder
from server.llm.offline import OFFLINE_MODEL

DEFAULT_OUTPUT = Path(__file__).parent / "results" / "latest.md"


async def evaluate(settings: Settings, target: str, labelled: LabelledSet, engine: str, model: str) -> EngineResult:
    """Every labelled item against the server at `target`."""
    started = time.perf_counter()
    async with student_client(settings, target) as client:
        search = await run_search(client, labelled)
        chat = await run_chat(client, labelled)
        quizzes = await run_quizzes(client, labelled)
    print(f"{engine}: evaluated in {time.perf_counter() - started:.1f} s", flush=True)
    return EngineResult(engine, model, tuple(search), tuple(chat), tuple(quizzes))


async def run(include_model: bool) -> list[EngineResult]:
    labelled = load_labelled_set()
    results: list[EngineResult] = []
    with tempfile.TemporaryDirectory(prefix="tutorstream-eval-") as tmp:
        data_dir = Path(tmp)
        async with embedded_database(data_dir) as url:
            embedder = LocalEmbedder()
            await embedder.warm_up()
            try:
                offline = offline_settings(data_dir, url)
                async with running(offline, embedder) as (server, target):
                    started = time.perf_counter()
                    await seed(server)
                    print(f"demo course ingested in {time.perf_counter() - started:.1f} s", flush=True)
                    results.append(await evaluate(offline, target, labelled, "offline", OFFLINE_MODEL))
                model = model_settings(data_dir, url) if include_model else None
                if model is not None:
                    async with running(model, embedder) as (_, target):
                        results.append(await evaluate(model, target, labelled, model.chat_model, model.chat_model))
            finally:
                await embedder.aclose()
    return results


def document(results: list[EngineResult], table: str) -> str:
    labelled = load_labelled_set()
    stamp = datetime.date.today().isoformat()
    lines = [
        "# Answer quality on the demo course",
        "",
        f"`make eval` on {stamp}: {len(labelled.questions)} labelled questions on `{labelled.course_id}` "
        f"(`server/demo/eval_questions.json`), {len(labelled.quizzes)} quizzes over "
        f"{len(labelled.course.videos)} videos. Search and chat count a hit when a top-3 result or a citation "
        "overlaps the range where the lecture gives the answer; quiz questions are checked by `evals/checks.py`.",
        "",
        table,
        "",
    ]
    for result in results:
        found = misses(result)
        lines += [f"## What `{result.engine}` got wrong ({len(found)})", ""]
        lines += [f"- {line}" for line in found] or ["- nothing"]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the Markdown report")
    parser.add_argument("--offline-only", action="store_true", help="skip the configured model even if there is one")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results = asyncio.run(run(include_model=not arguments.offline_only))
    table = render_table(results)
    print(table)
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(document(results, table), encoding="utf-8")
    print(f"written to {arguments.output}")


if __name__ == "__main__":
    main()

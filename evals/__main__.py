"""`python -m evals` (`make eval`): run both labelled courses — the demo course (DEV, tuned on) and the
held-out course (never tuned on) — against the offline engine and, when one is configured, the
OpenAI-compatible model; print one table and write it, stamped with the commit, to evals/results/latest.md.

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
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from evals.labels import LabelledSet, load_held_out_set, load_labelled_set
from evals.report import EngineResult, misses, render_table
from evals.runs import run_chat, run_hints, run_quizzes, run_search
from evals.stack import embedded_database, model_settings, offline_settings, running, seed, student_client
from evals.stamp import commit
from server.config import Settings
from server.embeddings.local import LocalEmbedder
from server.llm.offline import OFFLINE_MODEL

DEFAULT_OUTPUT = Path(__file__).parent / "results" / "latest.md"


async def evaluate(
    settings: Settings, target: str, labelled: LabelledSet, engine: str, model: str, embedder: LocalEmbedder
) -> EngineResult:
    """Every labelled item of one course against the server at `target`."""

    def embed(texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return embedder.raw_encode(texts)

    started = time.perf_counter()
    async with student_client(settings, target) as client:
        search = await run_search(client, labelled)
        chat = await run_chat(client, labelled)
        hints = await run_hints(lambda user: student_client(settings, target, user), labelled)
        quizzes = await run_quizzes(client, labelled, embed)
    print(f"{labelled.name}, {engine}: evaluated in {time.perf_counter() - started:.1f} s", flush=True)
    return EngineResult(engine, model, labelled.name, tuple(search), tuple(chat), tuple(hints), tuple(quizzes))


async def run(include_model: bool) -> list[EngineResult]:
    courses = (load_labelled_set(), load_held_out_set())
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
                    for labelled in courses:
                        await seed(server, labelled.course)
                    print(f"both courses ingested in {time.perf_counter() - started:.1f} s", flush=True)
                    for labelled in courses:
                        results.append(await evaluate(offline, target, labelled, "offline", OFFLINE_MODEL, embedder))
                model = model_settings(data_dir, url) if include_model else None
                if model is not None:
                    async with running(model, embedder) as (_, target):
                        for labelled in courses:
                            results.append(
                                await evaluate(model, target, labelled, model.chat_model, model.chat_model, embedder)
                            )
            finally:
                await embedder.aclose()
    return results


def document(results: list[EngineResult], table: str, measured: str) -> str:
    dev, held_out = load_labelled_set(), load_held_out_set()

    def described(labelled: LabelledSet) -> str:
        return (
            f"`{labelled.course_id}` ({labelled.name}): {len(labelled.questions)} direct and "
            f"{len(labelled.paraphrased)} paraphrased questions, {len(labelled.unanswerable)} unanswerable, "
            f"{len(labelled.follow_ups)} follow-ups, {len(labelled.hint_moments)} hint moments, "
            f"{len(labelled.quizzes)} quiz stretches"
        )

    stamp = datetime.date.today().isoformat()
    lines = [
        "# Answer quality: the demo course (dev) and a held-out course",
        "",
        f"`make eval` on {stamp} at commit `{measured}`. {described(dev)}; {described(held_out)}. The held-out "
        "course (`evals/heldout/`) was written apart from the engine and is never tuned on. Search and chat count "
        "a hit when a top-3 result or a citation overlaps the range where the lecture gives the answer (chat "
        "citations span the sentences an answer quotes); unanswerable questions count when the answer says the "
        "lecture does not (clearly) cover them; hints and quizzes are judged by `evals/checks.py`.",
        "",
        table,
        "",
    ]
    for result in results:
        found = misses(result)
        lines += [f"## What `{result.column}` got wrong ({len(found)})", ""]
        lines += [f"- {line}" for line in found] or ["- nothing"]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the Markdown report")
    parser.add_argument("--offline-only", action="store_true", help="skip the configured model even if there is one")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    measured = commit(arguments.output)
    results = asyncio.run(run(include_model=not arguments.offline_only))
    table = render_table(results)
    print(table)
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(document(results, table, measured), encoding="utf-8")
    print(f"written to {arguments.output}")


if __name__ == "__main__":
    main()

"""`python -m evals.calibrate`: when the offline engine says "the lecture doesn't cover this", learned from
the DEV set's labelled answerable and unanswerable questions — never from the held-out course.

For every labelled question, the two features of server.llm.calibration.Calibration are computed exactly as a
chat turn computes them, on a server with the demo course ingested: the best sentence's support (meaning +
words + named code terms) and the share of the question's terms the course never says. A logistic
regression (scikit-learn, classes weighted to balance) maps them to P(answerable); `confident` is the
lowest probability above every unanswerable question's, so a dev question the lectures never answer is
never answered without a hedge. Written to server/llm/calibration.json for the embedding model in use, with
its leave-one-out balanced accuracy and the commit it was measured at.

    python -m evals.calibrate [--dry-run]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import LeaveOneOut, cross_val_predict

from evals.labels import LabelledSet, load_labelled_set
from evals.runs import playhead
from evals.stack import embedded_database, offline_settings, running, seed
from evals.stamp import commit
from server.app import TutorstreamServer
from server.chat.context import gather_turn
from server.chat.domain import LearningContext
from server.embeddings.local import LocalEmbedder
from server.llm.offline import OfflineEngine, OfflineRequest, answerability_features

CALIBRATION_FILE = Path(__file__).resolve().parent.parent / "server" / "llm" / "calibration.json"


@dataclass(frozen=True, slots=True)
class Observation:
    question_id: str
    answerable: bool
    support: float
    unknown_share: float
    unknown_names: int


async def features(
    server: TutorstreamServer, course_id: str, video_id: str, position: float, text: str
) -> tuple[float, float, int]:
    runtime = server.runtime
    context = LearningContext(course_id=course_id, video_id=video_id, position_seconds=position)
    gathered = await gather_turn(runtime.search, runtime.sentences, text, context, [])
    request = OfflineRequest(
        question=gathered.question,
        evidence=gathered.evidence.items,
        sources=gathered.sources,
        video_id=video_id,
        position_seconds=position,
        embedding_model=runtime.search.embedding_model,
        unknown_terms=gathered.unknown_terms,
    )
    return answerability_features(OfflineEngine().score_all(request), request)


async def observe(server: TutorstreamServer, labelled: LabelledSet) -> list[Observation]:
    observations: list[Observation] = []
    asked = [
        (question, playhead(question, "elsewhere", labelled.transcripts[question.video_id].duration))
        for question in labelled.questions
    ] + [(item.question, item.playhead) for item in labelled.paraphrased]
    for question, position in asked:
        found = await features(server, labelled.course_id, question.video_id, position, question.question)
        observations.append(Observation(question.question_id, True, *found))
    for item in labelled.unanswerable:
        found = await features(server, labelled.course_id, item.video_id, item.playhead, item.question)
        observations.append(Observation(item.question_id, False, *found))
    return observations


@dataclass(frozen=True, slots=True)
class Fitted:
    support_weight: float
    unknown_weight: float
    names_weight: float
    intercept: float
    confident: float
    loo_balanced_accuracy: float


def fit(observations: list[Observation]) -> Fitted:
    features_ = np.array([[o.support, o.unknown_share, o.unknown_names] for o in observations])
    labels = np.array([1 if o.answerable else 0 for o in observations])
    model = LogisticRegression(class_weight="balanced")
    predicted = cross_val_predict(model, features_, labels, cv=LeaveOneOut())
    kept = float((predicted[labels == 1] == 1).mean())
    caught = float((predicted[labels == 0] == 0).mean())
    model.fit(features_, labels)
    probabilities = model.predict_proba(features_)[:, 1]
    highest_unanswerable = max((p for p, label in zip(probabilities, labels, strict=True) if label == 0), default=0.5)
    return Fitted(
        support_weight=float(model.coef_[0][0]),
        unknown_weight=float(model.coef_[0][1]),
        names_weight=float(model.coef_[0][2]),
        intercept=float(model.intercept_[0]),
        confident=round(max(0.5, float(highest_unanswerable)) + 1e-4, 4),
        loo_balanced_accuracy=(kept + caught) / 2,
    )


async def calibrate() -> tuple[str, Fitted, list[Observation]]:
    labelled = load_labelled_set()
    with tempfile.TemporaryDirectory(prefix="tutorstream-calibrate-") as tmp:
        data_dir = Path(tmp)
        async with embedded_database(data_dir) as url:
            embedder = LocalEmbedder()
            await embedder.warm_up()
            try:
                async with running(offline_settings(data_dir, url), embedder) as (server, _):
                    await seed(server)
                    observations = await observe(server, labelled)
                    model = server.runtime.search.embedding_model
            finally:
                await embedder.aclose()
    return model, fit(observations), observations


def write(model: str, fitted: Fitted, observations: list[Observation]) -> None:
    data = json.loads(CALIBRATION_FILE.read_text(encoding="utf-8"))
    entries = [entry for entry in data["models"] if entry["embedding_model"] != model]
    entries.append(
        {
            "embedding_model": model,
            "support_weight": round(fitted.support_weight, 4),
            "unknown_weight": round(fitted.unknown_weight, 4),
            "names_weight": round(fitted.names_weight, 4),
            "intercept": round(fitted.intercept, 4),
            "confident": fitted.confident,
            "leave_one_out_balanced_accuracy": round(fitted.loo_balanced_accuracy, 3),
            "questions": {
                "answerable": sum(1 for o in observations if o.answerable),
                "unanswerable": sum(1 for o in observations if not o.answerable),
            },
            "labelled_set": "webdev-101 (dev): direct (playhead 2 min away), paraphrased and unanswerable questions",
            "commit": commit(CALIBRATION_FILE),
        }
    )
    data["models"] = sorted(entries, key=lambda entry: entry["embedding_model"])
    CALIBRATION_FILE.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="print, do not write calibration.json")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    model, fitted, observations = asyncio.run(calibrate())
    for observation in sorted(observations, key=lambda o: o.support):
        mark = "answerable  " if observation.answerable else "unanswerable"
        print(
            f"{observation.support:7.3f} {observation.unknown_share:5.2f} {observation.unknown_names}  {mark}  "
            f"{observation.question_id}"
        )
    print(
        f"{model}: P(answerable) = logistic({fitted.intercept:.3f} + {fitted.support_weight:.3f}·support "
        f"+ {fitted.unknown_weight:.3f}·unknown share + {fitted.names_weight:.3f}·unknown names); "
        f"confident at {fitted.confident:.3f}; "
        f"leave-one-out balanced accuracy {fitted.loo_balanced_accuracy:.3f}"
    )
    if not arguments.dry_run:
        write(model, fitted, observations)
        print(f"written to {CALIBRATION_FILE}")


if __name__ == "__main__":
    main()

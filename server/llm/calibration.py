"""Whether the lecture answers a question at all, as a probability: the logistic model the offline engine
uses, one per embedding model, fitted on the demo course's labelled questions (`calibration.json`, written by
`python -m evals.calibrate`; never on the held-out course)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib.resources import files


@dataclass(frozen=True, slots=True)
class Calibration:
    """P(the lecture answers the question) = logistic(intercept + a·support + b·unknown share + c·unknown names).

    `support` is the best sentence's; the unknown share is the share of the question's terms the course never
    says; unknown names count the names and code terms among them (`useReducer`, `nginx`)."""

    embedding_model: str
    support_weight: float
    unknown_weight: float
    names_weight: float
    intercept: float
    # At or above this probability the answer is given without a hedge.
    confident: float

    def probability(self, support: float, unknown_share: float, unknown_names: int) -> float:
        logit = (
            self.intercept
            + self.support_weight * support
            + self.unknown_weight * unknown_share
            + self.names_weight * unknown_names
        )
        return 1.0 / (1.0 + math.exp(-logit))


def load_calibration() -> dict[str, Calibration]:
    data = json.loads((files("server.llm") / "calibration.json").read_text(encoding="utf-8"))
    return {
        entry["embedding_model"]: Calibration(
            entry["embedding_model"],
            float(entry["support_weight"]),
            float(entry["unknown_weight"]),
            float(entry["names_weight"]),
            float(entry["intercept"]),
            float(entry["confident"]),
        )
        for entry in data["models"]
    }


CALIBRATION = load_calibration()

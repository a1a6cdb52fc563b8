"""Concept mastery by Bayesian knowledge tracing (Corbett & Anderson, 1995).

Each concept is a hidden binary state, known or not known, observed through answers. Four parameters:

    P(L0) = 0.30  prior that a student already knows a concept before their first answer on it
    P(T)  = 0.10  chance of learning the concept between two answers (from the lecture, the feedback)
    P(G)  = 0.25  chance of a correct answer without knowing the concept: a blind pick among 4 options
    P(S)  = 0.10  chance of a wrong answer despite knowing it (a slip)

One answer on a concept whose estimate is P:

    prior    q = P + (1 - P) * P(T)                      the chance to learn since the last answer
    correct: P' = q (1 - P(S)) / (q (1 - P(S)) + (1 - q) P(G))
    wrong:   P' = q P(S)       / (q P(S)       + (1 - q) (1 - P(G)))

The stored probability is the posterior P' ("the student knows it, given every answer so far"); the learning
step is applied at the next answer. A correct answer always raises the estimate (1 - P(S) > P(G)). A wrong
answer lowers it for every estimate above the fixed point of the wrong-answer update (about 0.017 with these
parameters); starting from P(L0) the estimate never gets below that point, so a wrong answer always lowers
it. An item that tests several concepts updates each one with the same observation.
"""

from __future__ import annotations

from dataclasses import dataclass

P_INIT = 0.30
P_TRANSIT = 0.10
P_GUESS = 0.25
P_SLIP = 0.10
# Below this a concept counts as one the student struggles with (learning paths, reflections).
STRUGGLING_BELOW = 0.5
MAX_CONCEPT_CHARS = 80


@dataclass(frozen=True, slots=True)
class BktParameters:
    p_init: float = P_INIT
    p_transit: float = P_TRANSIT
    p_guess: float = P_GUESS
    p_slip: float = P_SLIP


DEFAULT_PARAMETERS = BktParameters()


def update(probability: float, correct: bool, parameters: BktParameters = DEFAULT_PARAMETERS) -> float:
    """The estimate after one answer (see the module docstring)."""
    prior = probability + (1.0 - probability) * parameters.p_transit
    if correct:
        known = prior * (1.0 - parameters.p_slip)
        unknown = (1.0 - prior) * parameters.p_guess
    else:
        known = prior * parameters.p_slip
        unknown = (1.0 - prior) * (1.0 - parameters.p_guess)
    posterior = known / (known + unknown)
    return min(1.0, max(0.0, posterior))


def normalize_concept(concept: str) -> str:
    """Concepts are compared case-insensitively with collapsed spaces."""
    return " ".join(concept.split()).lower()[:MAX_CONCEPT_CHARS]


def normalize_concepts(concepts: list[str], limit: int = 5) -> list[str]:
    seen: list[str] = []
    for concept in concepts:
        normalized = normalize_concept(concept)
        if normalized and normalized not in seen:
            seen.append(normalized)
        if len(seen) >= limit:
            break
    return seen

"""Bayesian knowledge tracing: right answers raise the estimate, wrong ones lower it, from any reachable state."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.agents.mastery import P_INIT, normalize_concepts, update

# Below this fixed point of the wrong-answer update a wrong answer would no longer lower the estimate; no
# sequence of answers that starts at P(L0) gets there.
FLOOR = 0.0171


@given(st.floats(min_value=FLOOR, max_value=0.9999))
def test_a_wrong_answer_lowers_and_a_right_answer_raises_the_estimate(probability: float) -> None:
    assert update(probability, correct=False) < probability
    assert update(probability, correct=True) > probability


@given(st.lists(st.booleans(), min_size=1, max_size=60))
def test_every_answer_moves_the_estimate_its_way(answers: list[bool]) -> None:
    probability = P_INIT
    for correct in answers:
        following = update(probability, correct)
        assert 0 < following < 1
        assert following > probability if correct else following < probability
        probability = following


def test_known_values() -> None:
    # prior 0.3 -> 0.37 after the learning step; then 0.37*0.9 / (0.37*0.9 + 0.63*0.25)
    assert update(P_INIT, True) == pytest.approx(0.6789, abs=1e-4)
    assert update(P_INIT, False) == pytest.approx(0.0726, abs=1e-4)
    probability = P_INIT
    for _ in range(200):
        probability = update(probability, False)
    assert probability == pytest.approx(0.01709, abs=1e-4)


def test_concepts_are_normalized() -> None:
    assert normalize_concepts(["  Event  Loop", "event loop", "", "Promise.all"]) == ["event loop", "promise.all"]

"""The tutor's voice: a user's personality and response-length preferences as model parameters.

Personality sets the sampling temperature and the tone; response length sets the token cap and how much the
answer should cover. The values are the same for every provider; the offline engine reads `sentences`.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PERSONALITY = "friendly"
DEFAULT_RESPONSE_LENGTH = "medium"

_TEMPERATURE = {"friendly": 0.7, "professional": 0.3, "peer": 0.9}
_TONE = {
    "friendly": "Be warm and encouraging; acknowledge the question before answering.",
    "professional": "Be concise, precise and formal; no small talk.",
    "peer": "Talk like a fellow student: casual and direct, plain words, no lecturing.",
}
_MAX_TOKENS = {"short": 160, "medium": 450, "detailed": 1000}
_LENGTH = {
    "short": "Answer in one or two sentences.",
    "medium": "Answer in a short paragraph.",
    "detailed": "Give a detailed explanation with the reasoning, step by step where it helps.",
}
# The largest answer any preference allows: the answer part of a budget estimate made before preferences load.
MAX_ANSWER_TOKENS = max(_MAX_TOKENS.values())
_SENTENCES = {"short": 1, "medium": 2, "detailed": 4}
# How the offline engine opens an answer in each voice (it has no model to set a tone).
_OPENERS = {"friendly": "Good question!", "professional": "", "peer": "Sure, so:"}


@dataclass(frozen=True, slots=True)
class Persona:
    personality: str
    response_length: str
    temperature: float
    max_tokens: int
    style: str
    sentences: int
    opener: str


def persona_for(personality: str, response_length: str) -> Persona:
    """Unknown or empty values fall back to the defaults (friendly, medium)."""
    voice = personality if personality in _TEMPERATURE else DEFAULT_PERSONALITY
    length = response_length if response_length in _MAX_TOKENS else DEFAULT_RESPONSE_LENGTH
    return Persona(
        personality=voice,
        response_length=length,
        temperature=_TEMPERATURE[voice],
        max_tokens=_MAX_TOKENS[length],
        style=f"{_TONE[voice]} {_LENGTH[length]}",
        sentences=_SENTENCES[length],
        opener=_OPENERS[voice],
    )

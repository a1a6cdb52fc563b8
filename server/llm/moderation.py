"""Moderation of what students write to the tutor (chat messages and hint struggles).

With a configured key, the OpenAI moderation endpoint (`MODERATION_MODEL`, `omni-moderation-latest` by default)
through the SDK decides; its self-harm categories map to `self_harm`, any other flagged category keeps its name
(`harassment`, `hate`, `violence`, ...). It sees the redacted text, like every upstream call. When it fails the
offline heuristic decides instead.

Offline, a heuristic, labelled as such (`detector: offline-heuristic`):

- `self_harm`: the phrases in `SELF_HARM_PHRASES` (first-person statements of wanting to die or to hurt
  oneself). A small, deliberately narrow list: it catches the plain statements a tutor must never answer with
  a lecture excerpt, and misses indirect ones, which only a trained model finds. Questions about the topic
  ("what is self-harm?", "why did he commit suicide?") are not statements and are answered; hyperbole ("I'd
  kill myself for an A") gets the supportive reply, erring on the side of care.
- `profanity`: `alt-profanity-check`'s linear model (it ships its trained weights) scores the text at or above
  `MODERATION_PROFANITY_THRESHOLD`. Frustrated students swear; the tutor still answers, the message is flagged
  for the course's instructors.

A `self_harm` verdict replaces the tutor's answer or hint with `SUPPORTIVE_REPLY`; every flagged message is
stored for the instructors (`server/analytics/moderation.py`). A chat turn whose message the phrases match
(`reads_as_self_harm`) waits for the verdict before any model call; any other turn's model starts answering
while the message is moderated, and nothing of its answer is shown before the verdict (`server/chat/turn.py`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from dataclasses import dataclass
from typing import Any

from server.config import Settings
from server.llm.openai_client import build_openai_client

logger = logging.getLogger(__name__)

SELF_HARM = "self_harm"
PROFANITY = "profanity"
OFFLINE_DETECTOR = "offline-heuristic"

SELF_HARM_PHRASES = (
    r"kill(ing)? my ?self",
    r"end(ing)? (it all|my (own )?life)",
    r"(want|wanna|going|plan(ning)?) to die",
    r"take my (own )?life",
    r"(i'?m|i am|feel(ing)?|been) suicidal",
    r"(think|thinking) (about|of) (suicide|killing myself|ending it)",
    r"hurt(ing)? my ?self",
    r"cut(ting)? my ?self",
    r"i('ve| have)?( been)? self[- ]?harm(ing)?",
    r"no reason to (live|go on)",
    r"better off dead",
    r"don'?t want to (live|be alive|exist)",
)
_SELF_HARM = re.compile(r"\b(" + "|".join(SELF_HARM_PHRASES) + r")\b", re.IGNORECASE)

SUPPORTIVE_REPLY = (
    "I'm really sorry you're feeling this way, and I'm glad you said it. You don't have to carry this alone: "
    "please reach out to someone you trust, or to a crisis line where you live (in the US you can call or text "
    "988; in the UK and Ireland, Samaritans on 116 123; elsewhere, findahelpline.com lists free, confidential "
    "lines). If you are in immediate danger, call your local emergency number. I'm a study tutor, so I can't "
    "help with this the way a person can, but I'm here for the course whenever you want to come back to it."
)
SUPPORTIVE_MODEL = "supportive-reply"


@dataclass(frozen=True)
class Verdict:
    flagged: bool
    category: str = ""
    score: float = 0.0
    detector: str = OFFLINE_DETECTOR


_model_lock = threading.Lock()
_predict: Any = None


def reads_as_self_harm(text: str) -> bool:
    """Whether the offline heuristic's phrases find a statement of self-harm in `text` (in process, microseconds)."""
    return _SELF_HARM.search(text) is not None


def _profanity_probability(text: str) -> float:
    global _predict
    with _model_lock:
        if _predict is None:
            from profanity_check import predict_prob

            _predict = predict_prob
    return float(_predict([text])[0])


def warm_up() -> None:
    """Load the offline model ahead of the first message (serve calls this at start, in a thread)."""
    _profanity_probability("warm up")


def offline_verdict(text: str, profanity_threshold: float) -> Verdict:
    if reads_as_self_harm(text):
        return Verdict(True, SELF_HARM, 1.0)
    score = _profanity_probability(text)
    if score >= profanity_threshold:
        return Verdict(True, PROFANITY, round(score, 4))
    return Verdict(False, "", round(score, 4))


class Moderator:
    """Construct once; `check` is safe to call concurrently."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client = build_openai_client(settings) if settings.llm_enabled and settings.moderation_online else None

    async def check(self, text: str, *, redacted: str) -> Verdict:
        """`text` as written (the offline heuristic reads it, in process) and `redacted`, what may leave the
        process (the endpoint reads it)."""
        if not self._settings.moderation_enabled or not text.strip():
            return Verdict(False)
        if self._client is not None:
            try:
                return await self._online(redacted)
            except Exception as error:
                logger.warning(
                    "moderation endpoint failed; the offline heuristic decides", extra={"error": type(error).__name__}
                )
        return await asyncio.to_thread(offline_verdict, text, self._settings.moderation_profanity_threshold)

    async def _online(self, text: str) -> Verdict:
        assert self._client is not None
        response = await self._client.moderations.create(model=self._settings.moderation_model, input=text)
        result = response.results[0]
        scores = {
            name: float(score)
            for name, score in result.category_scores.model_dump(by_alias=True).items()
            if score is not None
        }
        flagged = sorted(
            (name for name, on in result.categories.model_dump(by_alias=True).items() if on),
            key=lambda name: -scores.get(name, 0.0),
        )
        detector = self._settings.moderation_model
        self_harm = [name for name in flagged if name.startswith("self-harm")]
        if self_harm:
            return Verdict(True, SELF_HARM, round(scores.get(self_harm[0], 1.0), 4), detector)
        if result.flagged and flagged:
            return Verdict(
                True, flagged[0].replace("/", "_").replace("-", "_"), round(scores.get(flagged[0], 1.0), 4), detector
            )
        return Verdict(False, "", round(max(scores.values(), default=0.0), 4), detector)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()

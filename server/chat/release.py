"""Output moderation of a streamed answer: the model's text reaches the student a checked sentence at a time.

Deltas are held until a sentence is complete (spaCy's rule-based sentencizer; the last, maybe unfinished,
sentence stays held), then the complete ones are moderated together and released. Text with no sentence end
for `MAX_HELD_CHARS` (a code block, a long list) is checked and released as it stands. The first flagged piece
ends the answer: nothing of it is shown, the upstream stream is closed, and the turn ends with finish reason
CONTENT_FILTER after the text already released.

The cost is time to first token: the first sentence is shown when the model starts the second one (or ends),
plus one moderation check. `MODERATE_STREAMED_ANSWERS=false` relays tokens as they arrive.
"""

from __future__ import annotations

import asyncio

from spacy.pipeline import Sentencizer

from server.llm.moderation import Moderator, Verdict
from server.nlp import pipeline

MAX_HELD_CHARS = 400
# Held text without any of the sentencizer's own sentence-ending characters holds no complete sentence.
_ENDINGS = frozenset(Sentencizer.default_punct_chars)


class SentenceRelease:
    def __init__(self, moderator: Moderator) -> None:
        self._moderator = moderator
        self._held = ""
        self.verdict: Verdict | None = None

    @property
    def flagged(self) -> bool:
        return self.verdict is not None and self.verdict.flagged

    async def take(self, delta: str) -> str:
        """Add a delta; returns the text now checked and released ("" while a sentence is still open, and from
        the moment a piece is flagged)."""
        if self.flagged:
            return ""
        self._held += delta
        if len(self._held) >= MAX_HELD_CHARS:
            ready, self._held = self._held, ""
        elif _ENDINGS.isdisjoint(self._held):
            return ""
        else:
            sentences = await asyncio.to_thread(pipeline.streamed_sentences, self._held)
            if len(sentences) < 2:
                return ""
            ready, self._held = "".join(sentences[:-1]), sentences[-1]
        return await self._checked(ready)

    async def rest(self) -> str:
        """At the end of the stream: the held text, checked."""
        if self.flagged or not self._held:
            return ""
        ready, self._held = self._held, ""
        return await self._checked(ready)

    async def _checked(self, text: str) -> str:
        verdict = await self._moderator.check(text, redacted=text)
        if verdict.flagged:
            self.verdict = verdict
            return ""
        return text

"""One analysed transcript sentence as the transcripts domain stores it and the tutor's engines (grounding,
the offline answerer, the agents) read it."""

from __future__ import annotations

from dataclasses import dataclass

from server.nlp.analysis import Mention
from server.nlp.questions import Frame


@dataclass(frozen=True, slots=True)
class StoredSentence:
    """One analysed sentence; `similarity` is its cosine similarity to the query vector, when one was given
    and the sentence has a vector of the same model."""

    video_id: str
    index: int
    start_seconds: float
    end_seconds: float
    text: str
    lemmas: tuple[str, ...]
    kinds: frozenset[str]
    mentions: tuple[Mention, ...]
    frames: tuple[Frame, ...]
    complete: bool
    similarity: float | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.video_id, self.index)

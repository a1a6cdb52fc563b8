"""Parse lecture transcripts (WebVTT, SRT, JSON segments, plain text) into clean, timed cues.

Every format ends in the same normalisation, so downstream code sees one shape: cues sorted by start time,
never overlapping, each with clean text (markup and speaker labels removed) and an optional speaker.

Policy, in the order it is applied (a captioning pipeline has to accept what real tools emit, but never
guess when the timing is ambiguous):

1. Each cue is validated where it is written. A timestamp that does not parse, a negative time, an end that
   is not after the start, a cue longer than ``MAX_CUE_SECONDS`` or a time past ``MAX_TRANSCRIPT_SECONDS`` is
   rejected with ``InvalidArgument`` on field ``content``; the message names the line and the cue ordinal
   (``content: line 14 (cue 3): invalid timestamp '00:01:xx.000'``) or, for JSON, the segment
   (``content: segments[3]: ...``).
2. Cues whose text is empty once markup is removed (``[Music]``, ``♪``) are dropped, with a warning. A
   transcript with no cue left is rejected.
3. Cues are stably sorted by start time. WebVTT requires that order and players sort anyway, so an
   out-of-order file is repaired, with a warning, rather than rejected.
4. Overlaps between neighbours (after sorting) are resolved:
   - the same text repeated in an overlapping cue (roll-up captions) is merged into one cue;
   - two cues with identical timings (one caption line per cue) are merged, texts joined;
   - an overlap of at most ``OVERLAP_TOLERANCE_SECONDS`` is repaired by trimming the earlier cue's end;
   - any longer overlap, or a cue starting together with the previous one, is rejected naming both cues:
     the transcript must read as one linear text for chunking and citations.
5. With ``duration_seconds``: a cue starting at or after the end of the video is rejected; one ending after
   it is clamped to the duration, with a warning.

Text cleaning is `cue_text.py`; reading each format into raw cues is `formats.py`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import pairwise

from server.core.errors import InvalidArgument
from server.transcripts.cue_text import clean_cue_text, repeated_speaker_labels
from server.transcripts.formats import (
    RawCue,
    Warnings,
    invalid,
    normalise_newlines,
    parse_json_segments,
    parse_plain_text,
    parse_srt,
    parse_webvtt,
)

MAX_CUE_SECONDS = 3600.0
MAX_TRANSCRIPT_SECONDS = 24 * 3600.0
OVERLAP_TOLERANCE_SECONDS = 1.0


class TranscriptFormat(StrEnum):
    WEBVTT = "webvtt"
    SRT = "srt"
    JSON_SEGMENTS = "json_segments"
    PLAIN_TEXT = "plain_text"


@dataclass(frozen=True, slots=True)
class Cue:
    index: int
    start: float
    end: float
    text: str
    speaker: str | None = None
    # Speech-to-text cues: the recogniser's confidence, 0 to 1. None for captions.
    confidence: float | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class ParsedTranscript:
    format: TranscriptFormat
    cues: list[Cue]
    duration_seconds: float
    timing_estimated: bool = False
    warnings: list[str] = field(default_factory=list)
    language: str | None = None


def format_timestamp(seconds: float) -> str:
    """``HH:MM:SS.mmm`` for messages and citations."""
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


# --- normalisation -------------------------------------------------------------------------------------


def _normalise(raw: list[RawCue], duration_seconds: float | None, warnings: Warnings) -> tuple[list[Cue], float]:
    for cue in raw:
        if cue.start < 0 or cue.end < 0:
            raise invalid(f"{cue.where}: negative timestamps are not allowed")
        if cue.end <= cue.start:
            raise invalid(
                f"{cue.where}: end time {format_timestamp(cue.end)} is not after start time "
                f"{format_timestamp(cue.start)}"
            )
        if cue.end - cue.start > MAX_CUE_SECONDS:
            raise invalid(f"{cue.where}: cue lasts {cue.end - cue.start:.3f} s, longer than {MAX_CUE_SECONDS:.0f} s")
        if cue.end > MAX_TRANSCRIPT_SECONDS:
            raise invalid(f"{cue.where}: ends after the {MAX_TRANSCRIPT_SECONDS / 3600:.0f} hour limit")

    with_text = []
    for cue in raw:
        if cue.text:
            with_text.append(cue)
        else:
            warnings.add(f"{cue.where}: dropped a cue with no text")
    if not with_text:
        raise invalid("transcript has no cues with text")

    ordered = sorted(with_text, key=lambda cue: cue.start)
    if ordered != with_text:
        moved = next(a for a, b in pairwise(with_text) if b.start < a.start)
        warnings.add(f"cues were out of order (first after {moved.where}); sorted by start time")

    kept: list[RawCue] = [ordered[0]]
    for cue in ordered[1:]:
        previous = kept[-1]
        if cue.start >= previous.end:
            kept.append(cue)
            continue
        overlap = previous.end - cue.start
        if cue.text == previous.text:
            previous.end = max(previous.end, cue.end)
            warnings.add(f"{cue.where}: merged a repeated caption into {previous.where}")
        elif (cue.start, cue.end) == (previous.start, previous.end):
            previous.text = f"{previous.text} {cue.text}"
            previous.speaker = previous.speaker or cue.speaker
            warnings.add(f"{cue.where}: merged into {previous.where}, which has the same timings")
        elif overlap <= OVERLAP_TOLERANCE_SECONDS and cue.start > previous.start:
            warnings.add(
                f"{previous.where}: end trimmed from {format_timestamp(previous.end)} to "
                f"{format_timestamp(cue.start)} to remove a {overlap:.3f} s overlap with {cue.where}"
            )
            previous.end = cue.start
            kept.append(cue)
        else:
            raise invalid(
                f"{cue.where}: overlaps {previous.where} by {overlap:.3f} s (starts "
                f"{format_timestamp(cue.start)}, before it ends at {format_timestamp(previous.end)}); "
                f"overlaps longer than {OVERLAP_TOLERANCE_SECONDS:.3f} s are rejected"
            )

    if duration_seconds is not None:
        for cue in kept:
            if cue.start >= duration_seconds:
                raise invalid(
                    f"{cue.where}: starts at {format_timestamp(cue.start)}, at or after the end of the "
                    f"video ({format_timestamp(duration_seconds)})"
                )
            if cue.end > duration_seconds:
                warnings.add(
                    f"{cue.where}: end clamped from {format_timestamp(cue.end)} to the video duration "
                    f"{format_timestamp(duration_seconds)}"
                )
                cue.end = duration_seconds
    cues = [
        Cue(index=i, start=cue.start, end=cue.end, text=cue.text, speaker=cue.speaker) for i, cue in enumerate(kept)
    ]
    return cues, duration_seconds if duration_seconds is not None else cues[-1].end


# --- public API ----------------------------------------------------------------------------------------


def detect_format(content: str) -> TranscriptFormat:
    """Best guess from the content itself; callers that know the format should say so."""
    text = normalise_newlines(content).lstrip()
    if re.match(r"WEBVTT(?:[ \t\n]|$)", text):
        return TranscriptFormat.WEBVTT
    if text and text[0] in "[{":
        try:
            json.loads(text)
        except json.JSONDecodeError:
            pass
        else:
            return TranscriptFormat.JSON_SEGMENTS
    if re.search(r"^\s*\d+:\d{1,2}:\d{1,2}[,.]\d{1,3}\s*-->", text, re.MULTILINE):
        return TranscriptFormat.SRT
    return TranscriptFormat.PLAIN_TEXT


def parse_transcript(
    content: str, fmt: TranscriptFormat | str, *, duration_seconds: float | None = None
) -> ParsedTranscript:
    """Parse ``content`` in ``fmt`` into sorted, non-overlapping cues with clean text.

    Raises ``InvalidArgument`` (field ``content``, ``format`` or ``duration_seconds``) for input that
    cannot be read or repaired under the module's policy.
    """
    try:
        transcript_format = TranscriptFormat(fmt)
    except ValueError:
        choices = ", ".join(f.value for f in TranscriptFormat)
        raise InvalidArgument.field("format", f"unknown transcript format {fmt!r}; use one of {choices}") from None
    if duration_seconds is not None and not (
        math.isfinite(duration_seconds) and 0 < duration_seconds <= MAX_TRANSCRIPT_SECONDS
    ):
        raise InvalidArgument.field(
            "duration_seconds", f"must be a positive number of seconds up to {MAX_TRANSCRIPT_SECONDS:.0f}"
        )
    text = normalise_newlines(content)
    if not text.strip():
        raise invalid("transcript is empty")

    warnings = Warnings()
    language: str | None = None
    if transcript_format is TranscriptFormat.WEBVTT:
        raw, language = parse_webvtt(text)
    elif transcript_format is TranscriptFormat.SRT:
        raw = parse_srt(text, warnings)
    elif transcript_format is TranscriptFormat.JSON_SEGMENTS:
        raw, language = parse_json_segments(text)
    else:
        raw = parse_plain_text(text, duration_seconds)
    if not raw:
        raise invalid("transcript has no cues with text")
    if transcript_format is not TranscriptFormat.PLAIN_TEXT:
        speakers = repeated_speaker_labels(cue.text for cue in raw)
        for cue in raw:
            cue.text, label = clean_cue_text(cue.text, speakers=speakers)
            cue.speaker = cue.speaker or label
    cues, duration = _normalise(raw, duration_seconds, warnings)
    return ParsedTranscript(
        format=transcript_format,
        cues=cues,
        duration_seconds=duration,
        timing_estimated=transcript_format is TranscriptFormat.PLAIN_TEXT,
        warnings=warnings.finish(),
        language=language,
    )

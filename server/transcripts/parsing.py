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

Text cleaning: ``<v Name>`` voice spans, ``NAME:``/``Name:`` labels at a line start (a stoplist keeps
``Note:``, ``Step 1:`` and similar as text), ``[Name]`` at a line start, ``>>`` turn markers and ``- ``
dialogue dashes are removed; the first speaker found becomes ``Cue.speaker`` (a later, different speaker in
the same cue is dropped, never guessed). Known caption tags (``<b> <i> <u> <c.class> <lang> <ruby> <rt>
<font> <span>``), inline ``<00:00:01.000>`` timestamps, ``{\\an8}`` overrides and whole-line ``[...]``
annotations are removed, and HTML entities decoded. Unknown ``<...>`` text such as ``Promise<string>`` is
kept. Speaker labels are not carried to later cues, except in plain text, where a label opens a turn.

Plain text has no timings: it is split into sentences (long ones at word boundaries), timed at
``PLAIN_TEXT_WORDS_PER_MINUTE`` or scaled to ``duration_seconds``, and marked ``timing_estimated``.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import pairwise
from typing import Any

import webvtt
from webvtt.errors import MalformedCaptionError, MalformedFileError

from server.core.errors import InvalidArgument
from server.nlp import pipeline

MAX_CUE_SECONDS = 3600.0
MAX_TRANSCRIPT_SECONDS = 24 * 3600.0
OVERLAP_TOLERANCE_SECONDS = 1.0
PLAIN_TEXT_WORDS_PER_MINUTE = 150.0
PLAIN_TEXT_MAX_WORDS_PER_CUE = 30
MAX_WARNINGS = 50


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


@dataclass(slots=True)
class _RawCue:
    where: str
    start: float
    end: float
    text: str
    speaker: str | None


class _Warnings:
    def __init__(self) -> None:
        self.items: list[str] = []
        self._dropped = 0

    def add(self, message: str) -> None:
        if len(self.items) < MAX_WARNINGS:
            self.items.append(message)
        else:
            self._dropped += 1

    def finish(self) -> list[str]:
        if self._dropped:
            return [*self.items, f"{self._dropped} more warnings not shown"]
        return list(self.items)


def _invalid(description: str) -> InvalidArgument:
    return InvalidArgument.field("content", description)


def format_timestamp(seconds: float) -> str:
    """``HH:MM:SS.mmm`` for messages and citations."""
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


# --- text cleaning -------------------------------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_VOICE_TAG = re.compile(r"<v(?:\.[\w-]+)*(?:[ \t]+([^>]*))?>", re.IGNORECASE)
_TIMESTAMP_TAG = re.compile(r"<(?:\d+:)?\d{1,2}:\d{1,2}[.,]\d{1,3}>")
_CAPTION_TAG = re.compile(r"</?(?:b|i|u|s|c|v|em|strong|ruby|rt|lang|font|span|br)(?:[.\s][^<>]*)?/?>", re.IGNORECASE)
_OVERRIDE_BLOCK = re.compile(r"\{\\[^{}]*\}")
_TURN_MARKER = re.compile(r"^>{2,}\s*")
_DIALOGUE_DASH = re.compile(r"^[-‐–—]\s+")
_BRACKET_LABEL = re.compile(r"^\[([^\[\]]{1,60})\]\s*(.*)$")
_COLON_LABEL = re.compile(r"^((?:[A-Z][\w.'’-]*)(?:[ \t]+(?:[A-Z][\w.'’-]*|\d+)){0,2})[ \t]*:(?:[ \t]+|$)")
_NOT_SPEAKERS = _words(
    """note notes tip tips example examples step part chapter section rule question answer warning caution
    important remember hint summary recap update bonus exercise output input result error reminder fact
    key idea problem solution goal task quiz definition syntax usage why how what so now okay ok well
    first second third next then finally also again here there this that yes no edit source see and
    but or lesson module unit topic takeaway pro con today tomorrow"""
)
_SOUND_EVENTS = _words(
    """music applause laughter laughs laughing silence inaudible crosstalk noise background sighs coughs
    pause typing clicking beep static"""
)
_WHITESPACE = re.compile(r"\s+")


def _strip_markup(line: str) -> str:
    line = _VOICE_TAG.sub("", line)
    line = _TIMESTAMP_TAG.sub("", line)
    line = _CAPTION_TAG.sub("", line)
    line = _OVERRIDE_BLOCK.sub("", line)
    line = html.unescape(line).replace("\u200e", "").replace("\u200f", "").replace("♪", " ")
    line = _WHITESPACE.sub(" ", line).strip()
    line = _TURN_MARKER.sub("", line)
    return _DIALOGUE_DASH.sub("", line)


def _colon_label(line: str) -> tuple[str, int] | None:
    match = _COLON_LABEL.match(line)
    if not match:
        return None
    label = " ".join(match.group(1).split())
    if label.split()[0].lower().strip(".") in _NOT_SPEAKERS:
        return None
    return label, match.end()


def repeated_speaker_labels(raw_texts: Iterable[str]) -> frozenset[str]:
    """Title-case ``Name:`` labels that open a line at least twice: only those are read as speakers."""
    counts: Counter[str] = Counter()
    for raw in raw_texts:
        for line in raw.split("\n"):
            found = _colon_label(_strip_markup(line))
            if found:
                counts[found[0]] += 1
    return frozenset(label for label, count in counts.items() if count >= 2)


def clean_cue_text(raw: str, *, speakers: Collection[str] = ()) -> tuple[str, str | None]:
    """Strip caption markup and speaker labels from cue text; return ``(text, first speaker or None)``.

    An ALL-CAPS ``NAME:`` label is always a speaker; a Title-case ``Name:`` only when it is in ``speakers``
    (see ``repeated_speaker_labels``), so a one-off ``Flexbox: a layout model`` keeps its first word.
    """
    speaker: str | None = None
    kept: list[str] = []
    for raw_line in raw.split("\n"):
        voice = _VOICE_TAG.search(raw_line)
        if voice and voice.group(1) and speaker is None:
            speaker = _WHITESPACE.sub(" ", voice.group(1)).strip() or None
        line = _strip_markup(raw_line)
        bracket = _BRACKET_LABEL.match(line)
        if bracket:
            label, line = bracket.group(1).strip(), bracket.group(2)
            named = line and label[:1].isupper() and label.lower() not in _SOUND_EVENTS
            if named and speaker is None and label.split()[0].lower() not in _NOT_SPEAKERS:
                speaker = " ".join(label.split())
        found = _colon_label(line)
        if found:
            label, end = found
            shouting = label.upper() == label and any(ch.isalpha() for ch in label)
            if shouting or label in speakers:
                speaker = speaker or label
                line = line[end:].strip()
        if line:
            kept.append(line)
    return _WHITESPACE.sub(" ", " ".join(kept)).strip(), speaker


# --- formats -------------------------------------------------------------------------------------------

_LOOSE_TIMESTAMP = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{1,2})[.,](\d{1,3})")


def _timestamp_seconds(token: str, where: str, *, separators: str, hours_required: bool) -> float:
    if token.startswith("-"):
        raise _invalid(f"{where}: negative timestamp {token!r} is not allowed")
    match = _LOOSE_TIMESTAMP.fullmatch(token)
    if not match or (hours_required and match.group(1) is None):
        raise _invalid(f"{where}: invalid timestamp {token!r}")
    separator = token[match.start(4) - 1]
    if separator not in separators:
        hint = "WebVTT uses '.'" if separators == "." else "SRT uses ','"
        raise _invalid(f"{where}: invalid timestamp {token!r} ({hint} before the milliseconds)")
    hours = int(match.group(1) or 0)
    minutes, seconds = int(match.group(2)), int(match.group(3))
    if minutes > 59 or seconds > 59:
        raise _invalid(f"{where}: invalid timestamp {token!r} (minutes and seconds must be below 60)")
    millis = int(match.group(4).ljust(3, "0"))
    return (hours * 3_600_000 + minutes * 60_000 + seconds * 1000 + millis) / 1000


def _split_timing_line(line: str, where: str) -> tuple[str, str]:
    left, _, right = line.partition("-->")
    start_token = left.strip()
    end_tokens = right.split()
    if not start_token:
        raise _invalid(f"{where}: missing start time before '-->'")
    if not end_tokens:
        raise _invalid(f"{where}: missing end time after '-->'")
    return start_token, end_tokens[0]


def _normalise_newlines(content: str) -> str:
    return content.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def _parse_webvtt(content: str) -> tuple[list[_RawCue], str | None]:
    lines = content.split("\n")
    if not re.match(r"WEBVTT(?:[ \t]|$)", lines[0]):
        raise _invalid("line 1: a WebVTT file must start with 'WEBVTT'")
    # webvtt-py silently skips cue blocks it cannot read, so every timing line is checked here first: this
    # is what lets an error name its line and cue.
    timings: list[tuple[str, float, float]] = []
    for line_no, line in enumerate(lines[1:], start=2):
        where = f"line {line_no} (cue {len(timings) + 1})"
        if "-->" not in line:
            # "00:00:05.000 -> 00:00:09.000" is a timing line gone wrong, not a line of the cue's text.
            if _VTT_TIMING_LIKE.match(line):
                shown = line.strip() if len(line.strip()) <= 60 else f"{line.strip()[:60]}…"
                raise _invalid(f"{where}: malformed timing line {shown!r}, expected 'HH:MM:SS.mmm --> HH:MM:SS.mmm'")
            continue
        start_token, end_token = _split_timing_line(line, where)
        start = _timestamp_seconds(start_token, where, separators=".", hours_required=False)
        end = _timestamp_seconds(end_token, where, separators=".", hours_required=False)
        timings.append((where, start, end))
    try:
        document = webvtt.from_string(content)
    except (MalformedFileError, MalformedCaptionError) as error:
        raise _invalid(f"malformed WebVTT: {error}") from None
    cues: list[_RawCue] = []
    position = 0
    for caption in document.captions:
        start = caption.start_time.in_milliseconds() / 1000
        end = caption.end_time.in_milliseconds() / 1000
        if position >= len(timings):
            raise _invalid("malformed WebVTT: a cue was read that has no timing line")
        if timings[position][1:] != (start, end):
            raise _invalid(f"{timings[position][0]}: malformed cue block")
        cues.append(_RawCue(timings[position][0], start, end, "\n".join(caption.lines), None))
        position += 1
    if position < len(timings):
        raise _invalid(f"{timings[position][0]}: malformed cue block")
    language = None
    for line in lines[1:]:
        if not line.strip():
            break
        meta = re.match(r"Language:\s*(\S+)", line, re.IGNORECASE)
        if meta:
            language = meta.group(1)
    return cues, language


# A WebVTT timestamp followed by an arrow that is not "-->".
_VTT_TIMING_LIKE = re.compile(r"^\s*(?:\d+:)?\d{1,2}:\d{2}\.\d{1,3}\s*(?:-+>?|–|—|→|=>|>)\s*\S")
_SRT_INDEX = re.compile(r"\d+")
_TIMING_LIKE = re.compile(r"^\s*[\d:.,]{5,}\s*(?:-+>?|–|—|→|=>)\s*[\d:.,]{5,}")


def _srt_missing_timing(lines: list[str], index_line: int, cue_number: int) -> InvalidArgument:
    where = f"line {index_line + 2} (cue {cue_number})"
    rest = [line.strip() for line in lines[index_line + 1 :]]
    if rest and _TIMING_LIKE.match(rest[0]):
        return _invalid(f"{where}: malformed timing line {rest[0]!r}, expected 'HH:MM:SS,mmm --> HH:MM:SS,mmm'")
    if not any(rest):
        found = "the end of the file"
    elif rest[0]:
        found = repr(rest[0])
    else:
        found = "a blank line"
    return _invalid(
        f"{where}: expected a timing line 'HH:MM:SS,mmm --> HH:MM:SS,mmm' after cue number "
        f"{lines[index_line].strip()}, found {found}"
    )


def _parse_srt(content: str, warnings: _Warnings) -> list[_RawCue]:
    lines = content.split("\n")
    cues: list[_RawCue] = []
    line_count = len(lines)
    i = 0
    while i < line_count:
        line = lines[i].strip()
        if not line:
            i += 1
            continue
        if _SRT_INDEX.fullmatch(line):
            if i + 1 >= line_count or "-->" not in lines[i + 1]:
                raise _srt_missing_timing(lines, i, len(cues) + 1)
            i += 1
            line = lines[i].strip()
        if "-->" not in line:
            where = f"line {i + 1}"
            if _TIMING_LIKE.match(line):
                raise _invalid(
                    f"{where} (cue {len(cues) + 1}): malformed timing line {line!r}, "
                    "expected 'HH:MM:SS,mmm --> HH:MM:SS,mmm'"
                )
            if not cues:
                hint = " (this looks like WebVTT)" if line.startswith("WEBVTT") else ""
                raise _invalid(f"{where}: expected a cue number or timing line, found {line!r}{hint}")
            warnings.add(f"{where}: text after a blank line was joined to {cues[-1].where}")
            cues[-1].text = f"{cues[-1].text}\n{line}"
            i += 1
            continue
        where = f"line {i + 1} (cue {len(cues) + 1})"
        start_token, end_token = _split_timing_line(line, where)
        start = _timestamp_seconds(start_token, where, separators=",.", hours_required=True)
        end = _timestamp_seconds(end_token, where, separators=",.", hours_required=True)
        i += 1
        text_lines: list[str] = []
        while i < line_count and lines[i].strip():
            starts_next = "-->" in lines[i] or (
                _SRT_INDEX.fullmatch(lines[i].strip()) is not None and i + 1 < line_count and "-->" in lines[i + 1]
            )
            if starts_next:
                warnings.add(f"line {i + 1}: missing blank line before the next cue")
                break
            text_lines.append(lines[i])
            i += 1
        cues.append(_RawCue(where, start, end, "\n".join(text_lines), None))
    return cues


def _json_number(segment: dict[str, Any], key: str, where: str) -> float:
    value = segment.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(f"{where}: '{key}' must be a number of seconds, got {value!r}")
    if not math.isfinite(value):
        raise _invalid(f"{where}: '{key}' must be finite")
    if value < 0:
        raise _invalid(f"{where}: negative '{key}' {value!r} is not allowed")
    return round(float(value), 3)


def _parse_json_segments(content: str) -> tuple[list[_RawCue], str | None]:
    try:
        data = json.loads(content)
    except json.JSONDecodeError as error:
        raise _invalid(f"line {error.lineno} column {error.colno}: invalid JSON: {error.msg}") from None
    language = None
    if isinstance(data, dict):
        if not isinstance(data.get("segments"), list):
            raise _invalid("JSON object must have a 'segments' list")
        raw_language = data.get("language")
        language = raw_language if isinstance(raw_language, str) and raw_language else None
        data = data["segments"]
    if not isinstance(data, list):
        raise _invalid("JSON must be a list of segments or an object with a 'segments' list")
    cues: list[_RawCue] = []
    for position, segment in enumerate(data):
        where = f"segments[{position}]"
        if not isinstance(segment, dict):
            raise _invalid(f"{where}: a segment must be an object with 'start', 'end' and 'text'")
        start = _json_number(segment, "start", where)
        end = _json_number(segment, "end", where)
        raw_text = segment.get("text")
        if not isinstance(raw_text, str):
            raise _invalid(f"{where}: 'text' must be a string, got {raw_text!r}")
        raw_speaker = segment.get("speaker")
        if raw_speaker is not None and not isinstance(raw_speaker, str):
            raise _invalid(f"{where}: 'speaker' must be a string, got {raw_speaker!r}")
        cues.append(_RawCue(where, start, end, raw_text, (raw_speaker or "").strip() or None))
    return cues, language


def _parse_plain_text(content: str, duration_seconds: float | None) -> list[_RawCue]:
    pieces: list[tuple[str, str | None]] = []
    speakers = repeated_speaker_labels(content.split("\n"))
    for paragraph in re.split(r"\n\s*\n", content):
        turns: list[tuple[str | None, list[str]]] = []
        for line in paragraph.split("\n"):
            text, speaker = clean_cue_text(line, speakers=speakers)
            if speaker is not None or not turns:
                turns.append((speaker, []))
            if text:
                turns[-1][1].append(text)
        for speaker, texts in turns:
            for sentence in pipeline.sentences(" ".join(texts)):
                words = sentence.split()
                for begin in range(0, len(words), PLAIN_TEXT_MAX_WORDS_PER_CUE):
                    pieces.append((" ".join(words[begin : begin + PLAIN_TEXT_MAX_WORDS_PER_CUE]), speaker))
    total_words = sum(len(text.split()) for text, _ in pieces)
    seconds_per_word = 60.0 / PLAIN_TEXT_WORDS_PER_MINUTE
    if duration_seconds is not None and total_words:
        seconds_per_word = duration_seconds / total_words
    cues: list[_RawCue] = []
    words_so_far = 0
    for number, (text, speaker) in enumerate(pieces, start=1):
        start = round(words_so_far * seconds_per_word, 3)
        words_so_far += len(text.split())
        end = round(words_so_far * seconds_per_word, 3)
        if end <= start:
            raise InvalidArgument.field(
                "duration_seconds", f"{duration_seconds} s is too short to time {len(pieces)} sentences"
            )
        cues.append(_RawCue(f"sentence {number}", start, end, text, speaker))
    return cues


# --- normalisation -------------------------------------------------------------------------------------


def _normalise(raw: list[_RawCue], duration_seconds: float | None, warnings: _Warnings) -> tuple[list[Cue], float]:
    for cue in raw:
        if cue.start < 0 or cue.end < 0:
            raise _invalid(f"{cue.where}: negative timestamps are not allowed")
        if cue.end <= cue.start:
            raise _invalid(
                f"{cue.where}: end time {format_timestamp(cue.end)} is not after start time "
                f"{format_timestamp(cue.start)}"
            )
        if cue.end - cue.start > MAX_CUE_SECONDS:
            raise _invalid(f"{cue.where}: cue lasts {cue.end - cue.start:.3f} s, longer than {MAX_CUE_SECONDS:.0f} s")
        if cue.end > MAX_TRANSCRIPT_SECONDS:
            raise _invalid(f"{cue.where}: ends after the {MAX_TRANSCRIPT_SECONDS / 3600:.0f} hour limit")

    with_text = []
    for cue in raw:
        if cue.text:
            with_text.append(cue)
        else:
            warnings.add(f"{cue.where}: dropped a cue with no text")
    if not with_text:
        raise _invalid("transcript has no cues with text")

    ordered = sorted(with_text, key=lambda cue: cue.start)
    if ordered != with_text:
        moved = next(a for a, b in pairwise(with_text) if b.start < a.start)
        warnings.add(f"cues were out of order (first after {moved.where}); sorted by start time")

    kept: list[_RawCue] = [ordered[0]]
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
            raise _invalid(
                f"{cue.where}: overlaps {previous.where} by {overlap:.3f} s (starts "
                f"{format_timestamp(cue.start)}, before it ends at {format_timestamp(previous.end)}); "
                f"overlaps longer than {OVERLAP_TOLERANCE_SECONDS:.3f} s are rejected"
            )

    if duration_seconds is not None:
        for cue in kept:
            if cue.start >= duration_seconds:
                raise _invalid(
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
    text = _normalise_newlines(content).lstrip()
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
    text = _normalise_newlines(content)
    if not text.strip():
        raise _invalid("transcript is empty")

    warnings = _Warnings()
    language: str | None = None
    if transcript_format is TranscriptFormat.WEBVTT:
        raw, language = _parse_webvtt(text)
    elif transcript_format is TranscriptFormat.SRT:
        raw = _parse_srt(text, warnings)
    elif transcript_format is TranscriptFormat.JSON_SEGMENTS:
        raw, language = _parse_json_segments(text)
    else:
        raw = _parse_plain_text(text, duration_seconds)
    if not raw:
        raise _invalid("transcript has no cues with text")
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

"""The four transcript formats read into raw cues: each cue with its timing and where it was written (line
and cue ordinal, or JSON segment), for the messages of errors and warnings. Timestamps are checked here;
the text is cleaned (`cue_text.py`) and the cues normalised (`parsing.py`) afterwards, except in plain text,
whose speaker labels open turns while it is read.

Plain text has no timings: it is split into sentences (long ones at word boundaries), timed at
``PLAIN_TEXT_WORDS_PER_MINUTE`` or scaled to ``duration_seconds``, and marked ``timing_estimated``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import webvtt
from webvtt.errors import MalformedCaptionError, MalformedFileError

from server.core.errors import InvalidArgument
from server.nlp import pipeline
from server.transcripts.cue_text import clean_cue_text, repeated_speaker_labels

PLAIN_TEXT_WORDS_PER_MINUTE = 150.0
PLAIN_TEXT_MAX_WORDS_PER_CUE = 30
MAX_WARNINGS = 50


@dataclass(slots=True)
class RawCue:
    where: str
    start: float
    end: float
    text: str
    speaker: str | None


class Warnings:
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


def invalid(description: str) -> InvalidArgument:
    return InvalidArgument.field("content", description)


_LOOSE_TIMESTAMP = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{1,2})[.,](\d{1,3})")


def _timestamp_seconds(token: str, where: str, *, separators: str, hours_required: bool) -> float:
    if token.startswith("-"):
        raise invalid(f"{where}: negative timestamp {token!r} is not allowed")
    match = _LOOSE_TIMESTAMP.fullmatch(token)
    if not match or (hours_required and match.group(1) is None):
        raise invalid(f"{where}: invalid timestamp {token!r}")
    separator = token[match.start(4) - 1]
    if separator not in separators:
        hint = "WebVTT uses '.'" if separators == "." else "SRT uses ','"
        raise invalid(f"{where}: invalid timestamp {token!r} ({hint} before the milliseconds)")
    hours = int(match.group(1) or 0)
    minutes, seconds = int(match.group(2)), int(match.group(3))
    if minutes > 59 or seconds > 59:
        raise invalid(f"{where}: invalid timestamp {token!r} (minutes and seconds must be below 60)")
    millis = int(match.group(4).ljust(3, "0"))
    return (hours * 3_600_000 + minutes * 60_000 + seconds * 1000 + millis) / 1000


def _split_timing_line(line: str, where: str) -> tuple[str, str]:
    left, _, right = line.partition("-->")
    start_token = left.strip()
    end_tokens = right.split()
    if not start_token:
        raise invalid(f"{where}: missing start time before '-->'")
    if not end_tokens:
        raise invalid(f"{where}: missing end time after '-->'")
    return start_token, end_tokens[0]


def normalise_newlines(content: str) -> str:
    return content.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def parse_webvtt(content: str) -> tuple[list[RawCue], str | None]:
    lines = content.split("\n")
    if not re.match(r"WEBVTT(?:[ \t]|$)", lines[0]):
        raise invalid("line 1: a WebVTT file must start with 'WEBVTT'")
    # webvtt-py silently skips cue blocks it cannot read, so every timing line is checked here first: this
    # is what lets an error name its line and cue.
    timings: list[tuple[str, float, float]] = []
    for line_no, line in enumerate(lines[1:], start=2):
        where = f"line {line_no} (cue {len(timings) + 1})"
        if "-->" not in line:
            # "00:00:05.000 -> 00:00:09.000" is a timing line gone wrong, not a line of the cue's text.
            if _VTT_TIMING_LIKE.match(line):
                shown = line.strip() if len(line.strip()) <= 60 else f"{line.strip()[:60]}…"
                raise invalid(f"{where}: malformed timing line {shown!r}, expected 'HH:MM:SS.mmm --> HH:MM:SS.mmm'")
            continue
        start_token, end_token = _split_timing_line(line, where)
        start = _timestamp_seconds(start_token, where, separators=".", hours_required=False)
        end = _timestamp_seconds(end_token, where, separators=".", hours_required=False)
        timings.append((where, start, end))
    try:
        document = webvtt.from_string(content)
    except (MalformedFileError, MalformedCaptionError) as error:
        raise invalid(f"malformed WebVTT: {error}") from None
    cues: list[RawCue] = []
    position = 0
    for caption in document.captions:
        start = caption.start_time.in_milliseconds() / 1000
        end = caption.end_time.in_milliseconds() / 1000
        if position >= len(timings):
            raise invalid("malformed WebVTT: a cue was read that has no timing line")
        if timings[position][1:] != (start, end):
            raise invalid(f"{timings[position][0]}: malformed cue block")
        cues.append(RawCue(timings[position][0], start, end, "\n".join(caption.lines), None))
        position += 1
    if position < len(timings):
        raise invalid(f"{timings[position][0]}: malformed cue block")
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
        return invalid(f"{where}: malformed timing line {rest[0]!r}, expected 'HH:MM:SS,mmm --> HH:MM:SS,mmm'")
    if not any(rest):
        found = "the end of the file"
    elif rest[0]:
        found = repr(rest[0])
    else:
        found = "a blank line"
    return invalid(
        f"{where}: expected a timing line 'HH:MM:SS,mmm --> HH:MM:SS,mmm' after cue number "
        f"{lines[index_line].strip()}, found {found}"
    )


def parse_srt(content: str, warnings: Warnings) -> list[RawCue]:
    lines = content.split("\n")
    cues: list[RawCue] = []
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
                raise invalid(
                    f"{where} (cue {len(cues) + 1}): malformed timing line {line!r}, "
                    "expected 'HH:MM:SS,mmm --> HH:MM:SS,mmm'"
                )
            if not cues:
                hint = " (this looks like WebVTT)" if line.startswith("WEBVTT") else ""
                raise invalid(f"{where}: expected a cue number or timing line, found {line!r}{hint}")
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
        cues.append(RawCue(where, start, end, "\n".join(text_lines), None))
    return cues


def _json_number(segment: dict[str, Any], key: str, where: str) -> float:
    value = segment.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(f"{where}: '{key}' must be a number of seconds, got {value!r}")
    if not math.isfinite(value):
        raise invalid(f"{where}: '{key}' must be finite")
    if value < 0:
        raise invalid(f"{where}: negative '{key}' {value!r} is not allowed")
    return round(float(value), 3)


def parse_json_segments(content: str) -> tuple[list[RawCue], str | None]:
    try:
        data = json.loads(content)
    except json.JSONDecodeError as error:
        raise invalid(f"line {error.lineno} column {error.colno}: invalid JSON: {error.msg}") from None
    language = None
    if isinstance(data, dict):
        if not isinstance(data.get("segments"), list):
            raise invalid("JSON object must have a 'segments' list")
        raw_language = data.get("language")
        language = raw_language if isinstance(raw_language, str) and raw_language else None
        data = data["segments"]
    if not isinstance(data, list):
        raise invalid("JSON must be a list of segments or an object with a 'segments' list")
    cues: list[RawCue] = []
    for position, segment in enumerate(data):
        where = f"segments[{position}]"
        if not isinstance(segment, dict):
            raise invalid(f"{where}: a segment must be an object with 'start', 'end' and 'text'")
        start = _json_number(segment, "start", where)
        end = _json_number(segment, "end", where)
        raw_text = segment.get("text")
        if not isinstance(raw_text, str):
            raise invalid(f"{where}: 'text' must be a string, got {raw_text!r}")
        raw_speaker = segment.get("speaker")
        if raw_speaker is not None and not isinstance(raw_speaker, str):
            raise invalid(f"{where}: 'speaker' must be a string, got {raw_speaker!r}")
        cues.append(RawCue(where, start, end, raw_text, (raw_speaker or "").strip() or None))
    return cues, language


def parse_plain_text(content: str, duration_seconds: float | None) -> list[RawCue]:
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
    cues: list[RawCue] = []
    words_so_far = 0
    for number, (text, speaker) in enumerate(pieces, start=1):
        start = round(words_so_far * seconds_per_word, 3)
        words_so_far += len(text.split())
        end = round(words_so_far * seconds_per_word, 3)
        if end <= start:
            raise InvalidArgument.field(
                "duration_seconds", f"{duration_seconds} s is too short to time {len(pieces)} sentences"
            )
        cues.append(RawCue(f"sentence {number}", start, end, text, speaker))
    return cues

"""Cue text cleaning: caption markup and speaker labels out, the speaker kept.

``<v Name>`` voice spans, ``NAME:``/``Name:`` labels at a line start (a stoplist keeps
``Note:``, ``Step 1:`` and similar as text), ``[Name]`` at a line start, ``>>`` turn markers and ``- ``
dialogue dashes are removed; the first speaker found becomes ``Cue.speaker`` (a later, different speaker in
the same cue is dropped, never guessed). Known caption tags (``<b> <i> <u> <c.class> <lang> <ruby> <rt>
<font> <span>``), inline ``<00:00:01.000>`` timestamps, ``{\\an8}`` overrides and whole-line ``[...]``
annotations are removed, and HTML entities decoded. Unknown ``<...>`` text such as ``Promise<string>`` is
kept. Speaker labels are not carried to later cues, except in plain text, where a label opens a turn.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Collection, Iterable


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

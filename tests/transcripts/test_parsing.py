"""Transcript parsing: every format, cleaning, error locations and the overlap/order policy."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.core.errors import InvalidArgument
from server.nlp import pipeline
from server.transcripts.cue_text import clean_cue_text
from server.transcripts.formats import MAX_WARNINGS
from server.transcripts.parsing import (
    Cue,
    TranscriptFormat,
    detect_format,
    format_timestamp,
    parse_transcript,
)


def invalid(content: str, fmt: TranscriptFormat | str, **kwargs: float) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as caught:
        parse_transcript(content, fmt, **kwargs)  # type: ignore[arg-type]
    return caught.value


def content_error(content: str, fmt: TranscriptFormat | str, **kwargs: float) -> str:
    error = invalid(content, fmt, **kwargs)
    assert [violation.field for violation in error.violations] == ["content"]
    assert error.message == f"content: {error.violations[0].description}"
    return error.message


def timings(cues: list[Cue]) -> list[tuple[float, float]]:
    return [(cue.start, cue.end) for cue in cues]


# --- WebVTT ---------------------------------------------------------------------------------------------

VTT = """WEBVTT - lesson one
Kind: captions
Language: en

STYLE
::cue { color: yellow }

NOTE written for the parser tests

intro
00:00:01.000 --> 00:00:04.500 align:start position:10%
Hello and welcome.

00:04.500 --> 00:00:07.250
Short timestamps omit the hours.

3
01:02:03.004 --> 01:02:05.000
Late in a long lecture.
"""


def test_webvtt_timings_identifiers_and_language() -> None:
    parsed = parse_transcript(VTT, TranscriptFormat.WEBVTT)
    assert timings(parsed.cues) == [(1.0, 4.5), (4.5, 7.25), (3723.004, 3725.0)]
    assert [cue.text for cue in parsed.cues] == [
        "Hello and welcome.",
        "Short timestamps omit the hours.",
        "Late in a long lecture.",
    ]
    assert [cue.index for cue in parsed.cues] == [0, 1, 2]
    assert parsed.language == "en"
    assert parsed.duration_seconds == 3725.0
    assert parsed.timing_estimated is False
    assert parsed.warnings == []
    assert parsed.format is TranscriptFormat.WEBVTT


def test_webvtt_accepts_plain_string_format_crlf_and_bom() -> None:
    content = "\ufeffWEBVTT\r\n\r\n00:00:00.500 --> 00:00:02.000\r\nOne line\r\nsecond line\r\n"
    parsed = parse_transcript(content, "webvtt")
    assert timings(parsed.cues) == [(0.5, 2.0)]
    assert parsed.cues[0].text == "One line second line"


def test_webvtt_markup_and_voices_are_stripped() -> None:
    content = """WEBVTT

00:00:01.000 --> 00:00:03.000
<v Alice Smith>Use <b>display: flex</b> &amp; <i>gap</i></v>

00:00:03.000 --> 00:00:05.000
<v.loud Bob><c.yellow.bg_blue>Karaoke</c> <00:00:03.500>words &lt;3 <ruby>漢<rt>kan</rt></ruby>

00:00:05.000 --> 00:00:07.000
<lang en-GB>Generics like Promise<string> stay</lang>&nbsp;put
"""
    cues = parse_transcript(content, "webvtt").cues
    assert [(cue.text, cue.speaker) for cue in cues] == [
        ("Use display: flex & gap", "Alice Smith"),
        ("Karaoke words <3 漢kan", "Bob"),
        ("Generics like Promise<string> stay put", None),
    ]


@pytest.mark.parametrize(
    ("timing", "expected"),
    [
        ("00:01:xx.000 --> 00:01:05.000", "content: line 7 (cue 2): invalid timestamp '00:01:xx.000'"),
        ("00:01:00.000 --> 00:01:61.000", "content: line 7 (cue 2): invalid timestamp '00:01:61.000'"),
        ("00:01:00,000 --> 00:01:02.000", "content: line 7 (cue 2): invalid timestamp '00:01:00,000' (WebVTT"),
        ("-00:00:01.000 --> 00:00:02.000", "content: line 7 (cue 2): negative timestamp '-00:00:01.000'"),
        ("00:01:00.000 -->", "content: line 7 (cue 2): missing end time after '-->'"),
        ("00:01:09.000 --> 00:01:08.000", "content: line 7 (cue 2): end time 00:01:08.000 is not after start"),
        ("00:01:09.000 --> 00:01:09.000", "content: line 7 (cue 2): end time 00:01:09.000 is not after start"),
        ("00:00:05.000 -> 00:0x:09", "content: line 7 (cue 2): malformed timing line '00:00:05.000 -> 00:0x:09'"),
        ("00:00:05.000 - 00:00:09.000", "content: line 7 (cue 2): malformed timing line '00:00:05.000 - 00:00:09"),
        ("01:05.000 → 01:09.000", "content: line 7 (cue 2): malformed timing line '01:05.000 → 01:09.000'"),
    ],
)
def test_webvtt_errors_name_line_and_cue(timing: str, expected: str) -> None:
    content = f"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nfirst\n\n2\n{timing}\nsecond\n"
    assert content_error(content, "webvtt").startswith(expected)


def test_webvtt_requires_header() -> None:
    assert content_error("00:00:01.000 --> 00:00:02.000\nhi\n", "webvtt") == (
        "content: line 1: a WebVTT file must start with 'WEBVTT'"
    )


def test_webvtt_without_text_is_empty() -> None:
    content = "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n[Music]\n\n00:00:02.000 --> 00:00:03.000\n♪ ♪\n"
    assert content_error(content, "webvtt") == "content: transcript has no cues with text"


# --- SRT ------------------------------------------------------------------------------------------------

SRT = (
    "\ufeff1\r\n"
    "00:00:01,000 --> 00:00:02,500\r\n"
    '<font color="#ffff00">ALICE:</font> Hi there\r\n'
    "\r\n"
    "00:00:03,000 --> 00:00:04,000 X1:10 X2:20 Y1:5 Y2:9\r\n"
    "{\\an8}[Bob] <i>Hey</i>\r\n"
    "\r\n"
    "3\r\n"
    "00:00:05,000 --> 00:00:06,000\r\n"
    "- Are you coming?\r\n"
    "- Yes, in 5 minutes.\r\n"
    "4\r\n"
    "00:00:06.000 --> 00:00:07.000\r\n"
    ">> Dot separators are common in the wild.\r\n"
)


def test_srt_timings_crlf_bom_missing_index_and_separator() -> None:
    parsed = parse_transcript(SRT, TranscriptFormat.SRT)
    assert timings(parsed.cues) == [(1.0, 2.5), (3.0, 4.0), (5.0, 6.0), (6.0, 7.0)]
    assert [(cue.text, cue.speaker) for cue in parsed.cues] == [
        ("Hi there", "ALICE"),
        ("Hey", "Bob"),
        ("Are you coming? Yes, in 5 minutes.", None),
        ("Dot separators are common in the wild.", None),
    ]
    assert parsed.warnings == ["line 12: missing blank line before the next cue"]


def test_srt_text_after_blank_line_joins_previous_cue() -> None:
    content = "1\n00:00:01,000 --> 00:00:02,000\nfirst part\n\nsecond part\n\n2\n00:00:03,000 --> 00:00:04,000\nnext\n"
    parsed = parse_transcript(content, "srt")
    assert [cue.text for cue in parsed.cues] == ["first part second part", "next"]
    assert parsed.warnings == ["line 5: text after a blank line was joined to line 2 (cue 1)"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            "1\n00:00:01,000 --> 00:00:02,000\na\n\n2\n00:00:0x,000 --> 00:00:04,000\nb\n",
            "content: line 6 (cue 2): invalid timestamp '00:00:0x,000'",
        ),
        (
            "1\n00:00:01,000 --> 00:00:02,000\na\n\n2\nhello\n",
            "content: line 6 (cue 2): expected a timing line 'HH:MM:SS,mmm --> HH:MM:SS,mmm' after cue number 2,"
            " found 'hello'",
        ),
        (
            "1\n00:00:01,000 --> 00:00:02,000\na\n\n2\n",
            "content: line 6 (cue 2): expected a timing line 'HH:MM:SS,mmm --> HH:MM:SS,mmm' after cue number 2,"
            " found the end of the file",
        ),
        (
            "1\n00:00:01,000 - 00:00:02,000\na\n",
            "content: line 2 (cue 1): malformed timing line '00:00:01,000 - 00:00:02,000', expected",
        ),
        ("1\n01:00,000 --> 01:02,000\na\n", "content: line 2 (cue 1): invalid timestamp '01:00,000'"),
        ("WEBVTT\n\n00:00:01.000 --> 00:00:02.000\na\n", "content: line 1: expected a cue number or timing line"),
        (
            "1\n00:00:05,000 --> 00:00:04,000\na\n",
            "content: line 2 (cue 1): end time 00:00:04.000 is not after start time 00:00:05.000",
        ),
        (
            "1\n00:00:00,000 --> 01:00:00,001\na\n",
            "content: line 2 (cue 1): cue lasts 3600.001 s, longer than 3600 s",
        ),
    ],
)
def test_srt_errors_name_line_and_cue(content: str, expected: str) -> None:
    assert content_error(content, "srt").startswith(expected)


# --- JSON segments --------------------------------------------------------------------------------------


def test_json_segments_list_shape() -> None:
    content = json.dumps(
        [
            {"start": 0, "end": 1.25, "text": " Hello <b>there</b>", "speaker": "Instructor"},
            {"start": 1.25, "end": 3, "text": "STUDENT: A question?", "speaker": None},
        ]
    )
    parsed = parse_transcript(content, "json_segments")
    assert timings(parsed.cues) == [(0.0, 1.25), (1.25, 3.0)]
    assert [(cue.text, cue.speaker) for cue in parsed.cues] == [
        ("Hello there", "Instructor"),
        ("A question?", "STUDENT"),
    ]
    assert parsed.language is None


def test_json_segments_object_shape_with_extra_fields() -> None:
    content = json.dumps(
        {
            "language": "de",
            "text": "ignored",
            "segments": [
                {"id": 0, "seek": 0, "start": 0.0, "end": 2.5, "text": " Guten Tag.", "avg_logprob": -0.2},
                {"id": 1, "seek": 0, "start": 2.5, "end": 4.0004, "text": " Willkommen."},
            ],
        }
    )
    parsed = parse_transcript(content, TranscriptFormat.JSON_SEGMENTS)
    assert timings(parsed.cues) == [(0.0, 2.5), (2.5, 4.0)]
    assert parsed.language == "de"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('[{"start": 0, "end": 1, "text": "a"},\n {"start": 1, "end": 2, "text": "b",}]', "content: line 2 column"),
        ('[{"start": 0, "end": 1}]', "content: segments[0]: 'text' must be a string, got None"),
        ('[{"end": 1, "text": "a"}]', "content: segments[0]: 'start' must be a number of seconds, got None"),
        ('[{"start": true, "end": 1, "text": "a"}]', "content: segments[0]: 'start' must be a number"),
        ('[{"start": "0", "end": 1, "text": "a"}]', "content: segments[0]: 'start' must be a number"),
        ('[{"start": 0, "end": 1, "text": "a"}, {"start": -2, "end": 1, "text": "b"}]', "content: segments[1]: neg"),
        ('[{"start": 0, "end": 1, "text": "a", "speaker": 7}]', "content: segments[0]: 'speaker' must be a string"),
        ('[{"start": 0, "end": 1e999, "text": "a"}]', "content: segments[0]: 'end' must be finite"),
        ('[{"start": 3, "end": 1, "text": "a"}]', "content: segments[0]: end time 00:00:01.000 is not after"),
        ('["just text"]', "content: segments[0]: a segment must be an object"),
        ('{"results": []}', "content: JSON object must have a 'segments' list"),
        ('"text"', "content: JSON must be a list of segments"),
        ("[]", "content: transcript has no cues with text"),
    ],
)
def test_json_segment_errors(content: str, expected: str) -> None:
    assert content_error(content, "json_segments").startswith(expected)


# --- plain text -----------------------------------------------------------------------------------------


def test_plain_text_is_split_into_sentences_and_timed_at_150_wpm() -> None:
    content = "Flexbox is one-dimensional. Grid handles rows and columns, e.g. a photo gallery!\n\nReady? Go."
    parsed = parse_transcript(content, TranscriptFormat.PLAIN_TEXT)
    assert parsed.timing_estimated is True
    assert [cue.text for cue in parsed.cues] == [
        "Flexbox is one-dimensional.",
        "Grid handles rows and columns, e.g. a photo gallery!",
        "Ready?",
        "Go.",
    ]
    # 3 + 9 + 1 + 1 words at 0.4 s each, back to back.
    assert timings(parsed.cues) == [(0.0, 1.2), (1.2, 4.8), (4.8, 5.2), (5.2, 5.6)]
    assert parsed.duration_seconds == 5.6


def test_plain_text_scales_to_duration_and_splits_long_sentences() -> None:
    content = " ".join(f"word{i}" for i in range(75))
    parsed = parse_transcript(content, "plain_text", duration_seconds=150.0)
    assert [len(cue.text.split()) for cue in parsed.cues] == [30, 30, 15]
    assert timings(parsed.cues) == [(0.0, 60.0), (60.0, 120.0), (120.0, 150.0)]
    assert parsed.duration_seconds == 150.0


def test_plain_text_speaker_turns() -> None:
    content = "ALICE: Hi Bob. How are you?\nBOB: Fine, thanks.\nStill talking here.\nNote: not a speaker."
    cues = parse_transcript(content, "plain_text").cues
    assert [(cue.text, cue.speaker) for cue in cues] == [
        ("Hi Bob.", "ALICE"),
        ("How are you?", "ALICE"),
        ("Fine, thanks.", "BOB"),
        ("Still talking here.", "BOB"),
        ("Note: not a speaker.", "BOB"),
    ]


def test_plain_text_duration_too_short_for_the_text() -> None:
    error = invalid("One. Two. Three.", "plain_text", duration_seconds=0.002)
    assert [violation.field for violation in error.violations] == ["duration_seconds"]


# --- cleaning -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "speakers", "expected"),
    [
        ("ALICE: hello", (), ("hello", "ALICE")),
        ("DR. SMITH: hello", (), ("hello", "DR. SMITH")),
        ("Alice: hello", (), ("Alice: hello", None)),
        ("Alice: hello", ("Alice",), ("hello", "Alice")),
        ("Flexbox: a layout model", (), ("Flexbox: a layout model", None)),
        ("Note: remember this", ("Note",), ("Note: remember this", None)),
        ("NOTE: remember this", (), ("NOTE: remember this", None)),
        ("Step 1: install it", (), ("Step 1: install it", None)),
        ("[Alice] hello", (), ("hello", "Alice")),
        ("[Music] hello", (), ("hello", None)),
        ("[laughs] okay", (), ("okay", None)),
        ("[APPLAUSE]", (), ("", None)),
        ("- first\n- second", (), ("first second", None)),
        ("-1 is negative", (), ("-1 is negative", None)),
        (">> NEWS ANCHOR: good evening", (), ("good evening", "NEWS ANCHOR")),
        ("ALICE: hi\nBOB: hello", (), ("hi hello", "ALICE")),
        ("see arr[0] and https://example.test", (), ("see arr[0] and https://example.test", None)),
        ("<v Ann>Hi</v>\n<v Ben>Hey</v>", (), ("Hi Hey", "Ann")),
        ("a &lt;b&gt; c &amp;amp; d", (), ("a <b> c &amp; d", None)),
    ],
)
def test_clean_cue_text(raw: str, speakers: tuple[str, ...], expected: tuple[str, str | None]) -> None:
    assert clean_cue_text(raw, speakers=speakers) == expected


def test_title_case_labels_count_as_speakers_when_repeated() -> None:
    content = (
        "1\n00:00:01,000 --> 00:00:02,000\nAlice: first\n\n"
        "2\n00:00:02,000 --> 00:00:03,000\nBob: reply\n\n"
        "3\n00:00:03,000 --> 00:00:04,000\nAlice: again\n\n"
        "4\n00:00:04,000 --> 00:00:05,000\nFlexbox: a layout model\n"
    )
    cues = parse_transcript(content, "srt").cues
    assert [(cue.text, cue.speaker) for cue in cues] == [
        ("first", "Alice"),
        ("Bob: reply", None),
        ("again", "Alice"),
        ("Flexbox: a layout model", None),
    ]


def test_sentences_keep_abbreviations_and_decimals() -> None:
    text = 'It is 3.5 times faster, i.e. much faster. Dr. Lee said "yes." Then J. Doe left! Why? node.js is fine.'
    assert pipeline.sentences(text) == [
        "It is 3.5 times faster, i.e. much faster.",
        'Dr. Lee said "yes."',
        "Then J. Doe left!",
        "Why?",
        "node.js is fine.",
    ]


# --- order and overlap policy ---------------------------------------------------------------------------


def vtt(*cues: tuple[str, str, str]) -> str:
    blocks = [f"{start} --> {end}\n{text}" for start, end, text in cues]
    return "WEBVTT\n\n" + "\n\n".join(blocks) + "\n"


def test_out_of_order_cues_are_sorted_with_a_warning() -> None:
    parsed = parse_transcript(
        vtt(
            ("00:00:04.000", "00:00:06.000", "third"),
            ("00:00:00.000", "00:00:02.000", "first"),
            ("00:00:02.000", "00:00:04.000", "second"),
        ),
        "webvtt",
    )
    assert [cue.text for cue in parsed.cues] == ["first", "second", "third"]
    assert [cue.index for cue in parsed.cues] == [0, 1, 2]
    assert parsed.warnings == ["cues were out of order (first after line 3 (cue 1)); sorted by start time"]


def test_small_overlap_is_trimmed_with_a_warning() -> None:
    parsed = parse_transcript(
        vtt(("00:00:01.000", "00:00:03.400", "one"), ("00:00:02.400", "00:00:05.000", "two")), "webvtt"
    )
    assert timings(parsed.cues) == [(1.0, 2.4), (2.4, 5.0)]
    assert parsed.warnings == [
        "line 3 (cue 1): end trimmed from 00:00:03.400 to 00:00:02.400 to remove a 1.000 s overlap with line 6 (cue 2)"
    ]


def test_large_overlap_is_rejected_naming_both_cues() -> None:
    message = content_error(
        vtt(("00:00:01.000", "00:00:05.000", "one"), ("00:00:03.000", "00:00:06.000", "two")), "webvtt"
    )
    assert message == (
        "content: line 6 (cue 2): overlaps line 3 (cue 1) by 2.000 s (starts 00:00:03.000, before it ends at "
        "00:00:05.000); overlaps longer than 1.000 s are rejected"
    )


def test_cues_starting_together_with_different_ends_are_rejected() -> None:
    message = content_error(
        vtt(("00:00:01.000", "00:00:01.500", "one"), ("00:00:01.000", "00:00:02.000", "two")), "webvtt"
    )
    assert message.startswith("content: line 6 (cue 2): overlaps line 3 (cue 1) by 0.500 s")


def test_identical_timings_are_merged() -> None:
    parsed = parse_transcript(
        vtt(("00:00:01.000", "00:00:03.000", "top line"), ("00:00:01.000", "00:00:03.000", "bottom line")),
        "webvtt",
    )
    assert [(cue.start, cue.end, cue.text) for cue in parsed.cues] == [(1.0, 3.0, "top line bottom line")]
    assert parsed.warnings == ["line 6 (cue 2): merged into line 3 (cue 1), which has the same timings"]


def test_repeated_roll_up_caption_is_merged() -> None:
    parsed = parse_transcript(
        vtt(
            ("00:00:01.000", "00:00:03.000", "so the flex container"),
            ("00:00:01.000", "00:00:04.000", "so the flex container"),
            ("00:00:04.000", "00:00:06.000", "lays out its items"),
        ),
        "webvtt",
    )
    assert timings(parsed.cues) == [(1.0, 4.0), (4.0, 6.0)]
    assert parsed.warnings == ["line 6 (cue 2): merged a repeated caption into line 3 (cue 1)"]


def test_empty_cues_are_dropped_with_a_warning() -> None:
    parsed = parse_transcript(
        vtt(("00:00:01.000", "00:00:02.000", "[Music]"), ("00:00:02.000", "00:00:03.000", "words")), "webvtt"
    )
    assert [cue.text for cue in parsed.cues] == ["words"]
    assert parsed.warnings == ["line 3 (cue 1): dropped a cue with no text"]


def test_duration_clamps_the_last_cue_and_rejects_cues_after_it() -> None:
    content = vtt(("00:00:01.000", "00:00:02.000", "one"), ("00:00:09.000", "00:00:10.500", "two"))
    parsed = parse_transcript(content, "webvtt", duration_seconds=10.0)
    assert timings(parsed.cues) == [(1.0, 2.0), (9.0, 10.0)]
    assert parsed.duration_seconds == 10.0
    assert parsed.warnings == ["line 6 (cue 2): end clamped from 00:00:10.500 to the video duration 00:00:10.000"]
    assert content_error(content, "webvtt", duration_seconds=9.0) == (
        "content: line 6 (cue 2): starts at 00:00:09.000, at or after the end of the video (00:00:09.000)"
    )


def test_cue_longer_than_an_hour_is_rejected() -> None:
    message = content_error(vtt(("00:00:00.000", "01:00:00.500", "long")), "webvtt")
    assert message == "content: line 3 (cue 1): cue lasts 3600.500 s, longer than 3600 s"


def test_warnings_are_capped() -> None:
    content = vtt(*[(format_timestamp(i), format_timestamp(i + 0.5), "[Music]") for i in range(80)])
    content += "\n00:02:00.000 --> 00:02:01.000\nwords\n"
    parsed = parse_transcript(content, "webvtt")
    assert len(parsed.warnings) == MAX_WARNINGS + 1
    assert parsed.warnings[-1] == "30 more warnings not shown"


# --- arguments and detection ----------------------------------------------------------------------------


@pytest.mark.parametrize("content", ["", "   \n\t\n", "\ufeff"])
def test_empty_content(content: str) -> None:
    for fmt in TranscriptFormat:
        assert content_error(content, fmt) == "content: transcript is empty"


def test_unknown_format() -> None:
    error = invalid("hello", "docx")
    assert [violation.field for violation in error.violations] == ["format"]


@pytest.mark.parametrize("duration", [0.0, -1.0, math.nan, math.inf, 1e9])
def test_bad_duration(duration: float) -> None:
    error = invalid(VTT, "webvtt", duration_seconds=duration)
    assert [violation.field for violation in error.violations] == ["duration_seconds"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (VTT, TranscriptFormat.WEBVTT),
        ("\ufeff  WEBVTT\n", TranscriptFormat.WEBVTT),
        (SRT, TranscriptFormat.SRT),
        ('[{"start": 0, "end": 1, "text": "a"}]', TranscriptFormat.JSON_SEGMENTS),
        ('{"segments": []}', TranscriptFormat.JSON_SEGMENTS),
        ("[Music] and then some words", TranscriptFormat.PLAIN_TEXT),
        ("Just a paragraph of text.", TranscriptFormat.PLAIN_TEXT),
        ("", TranscriptFormat.PLAIN_TEXT),
    ],
)
def test_detect_format(content: str, expected: TranscriptFormat) -> None:
    assert detect_format(content) is expected


def test_format_timestamp() -> None:
    assert format_timestamp(0) == "00:00:00.000"
    assert format_timestamp(3723.0045) == "01:02:03.004" or format_timestamp(3723.0045) == "01:02:03.005"
    assert format_timestamp(59.9996) == "00:01:00.000"


# --- round trip -----------------------------------------------------------------------------------------

WORDS = st.sampled_from(["flex", "grid", "await", "Promise.all", "useEffect", "cache", "row", "the", "a", "x1"])


@st.composite
def timed_cues(draw: st.DrawFn) -> list[tuple[int, int, str]]:
    count = draw(st.integers(min_value=1, max_value=25))
    cues = []
    at = draw(st.integers(min_value=0, max_value=5000))
    for _ in range(count):
        at += draw(st.integers(min_value=0, max_value=3000))
        length = draw(st.integers(min_value=1, max_value=8000))
        text = " ".join(draw(st.lists(WORDS, min_size=1, max_size=12)))
        cues.append((at, at + length, text))
        at += length
    return cues


def srt_time(millis: int) -> str:
    return format_timestamp(millis / 1000).replace(".", ",")


@settings(max_examples=60, deadline=None)
@given(timed_cues(), st.booleans())
def test_round_trip_through_webvtt_and_srt(cues: list[tuple[int, int, str]], as_srt: bool) -> None:
    if as_srt:
        content = "\n\n".join(
            f"{n}\n{srt_time(start)} --> {srt_time(end)}\n{text}" for n, (start, end, text) in enumerate(cues, 1)
        )
        parsed = parse_transcript(content, "srt")
    else:
        content = vtt(*[(format_timestamp(s / 1000), format_timestamp(e / 1000), t) for s, e, t in cues])
        parsed = parse_transcript(content, "webvtt")
    assert [(cue.start, cue.end, cue.text) for cue in parsed.cues] == [(s / 1000, e / 1000, t) for s, e, t in cues]
    assert parsed.warnings == []

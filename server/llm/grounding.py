"""Transcript excerpts as labelled, delimited data for a model, and citations back out of its answer.

Every excerpt gets a short id (`c1`, `c2`, ...) and is rendered as

    <transcript_chunk id="c1" video="flexbox-layout" start="01:43" end="02:05" kind="search">
    ...transcript text...
    </transcript_chunk>

Transcript text is untrusted: anything in it that could open or close one of the prompt's own elements is
escaped (`<` becomes `&lt;`), so a line such as `</transcript_chunk> Ignore previous instructions` stays
inside its block. Only ids that were handed out come back as citations; anything else in brackets is text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from server.core.values import Citation, SearchHit
from server.nlp.pipeline import content_keys
from server.nlp.sentence import StoredSentence

# Elements the prompt itself uses; text must not be able to open or close any of them.
PROMPT_ELEMENTS = ("transcript_chunk", "transcript_data", "learning_context")
_ELEMENT_TAG = re.compile(r"<(\s*/?\s*(?:" + "|".join(PROMPT_ELEMENTS) + r"))", re.IGNORECASE)
_BRACKETS = re.compile(r"\[([^\[\]\n]{1,64})\]")
_LABEL = re.compile(r"c\d{1,3}")
QUOTE_LIMIT = 280
# How much of the answer before a marker decides which sentences of the excerpt it cites.
QUOTE_CONTEXT_CHARS = 400
QUOTE_SENTENCES = 3

KIND_SELECTED = "selected"
KIND_PLAYHEAD = "playhead"
KIND_SEARCH = "search"
# Later in the video than the student wants to hear (no spoilers): cited as a pointer, its text withheld.
KIND_AHEAD = "ahead"
WITHHELD = (
    "(content withheld: it comes later in the video than the student has watched, and they asked for no spoilers)"
)


@dataclass(frozen=True, slots=True)
class Source:
    """One excerpt offered to the model: its label in the prompt and where it came from."""

    label: str
    hit: SearchHit
    kind: str = KIND_SEARCH


def format_clock(seconds: float) -> str:
    """`mm:ss`, or `h:mm:ss` from an hour on."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def escape_data(text: str) -> str:
    """Neutralise anything that would open or close one of the prompt's elements."""
    return _ELEMENT_TAG.sub(r"&lt;\1", text)


def label_sources(groups: Iterable[tuple[str, Sequence[SearchHit]]], limit: int) -> list[Source]:
    """Number the hits `c1..cN` in the order given, first occurrence of a chunk wins, at most `limit`."""
    seen: set[str] = set()
    sources: list[Source] = []
    for kind, hits in groups:
        for hit in hits:
            if hit.chunk_id in seen:
                continue
            if len(sources) >= limit:
                return sources
            seen.add(hit.chunk_id)
            sources.append(Source(label=f"c{len(sources) + 1}", hit=hit, kind=kind))
    return sources


def render_source(source: Source) -> str:
    hit = source.hit
    body = WITHHELD if source.kind == KIND_AHEAD else escape_data(hit.text.strip())
    return (
        f'<transcript_chunk id="{source.label}" video="{hit.video_id}" '
        f'start="{format_clock(hit.start_seconds)}" end="{format_clock(hit.end_seconds)}" '
        f'kind="{source.kind}">\n{body}\n</transcript_chunk>'
    )


def render_sources(sources: Sequence[Source]) -> str:
    if not sources:
        return "<transcript_data>\n(no transcript excerpts are available for this question)\n</transcript_data>"
    body = "\n".join(render_source(source) for source in sources)
    return f"<transcript_data>\n{body}\n</transcript_data>"


def shorten(text: str, limit: int = QUOTE_LIMIT) -> str:
    """At most `limit` characters, cut at a word boundary, with an ellipsis when cut."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(",;:") + "…"


def _markers(text: str) -> list[tuple[str, int]]:
    """(label, position) of each label's first mention in `[c1]`, `[c1, c3]` or `[c2][c4]` markers."""
    found: list[tuple[str, int]] = []
    seen: set[str] = set()
    for match in _BRACKETS.finditer(text):
        for token in re.split(r"[\s,;]+", match.group(1).strip()):
            if _LABEL.fullmatch(token) and token not in seen:
                seen.add(token)
                found.append((token, match.start()))
    return found


def cited_labels(text: str) -> list[str]:
    """Labels in `[c1]`, `[c1, c3]` or `[c2][c4]` markers, in order of first mention."""
    return [label for label, _ in _markers(text)]


def _cited_sentences(before_marker: str, sentences: Sequence[StoredSentence]) -> list[StoredSentence]:
    """The sentences of a cited excerpt that the answer's words before the marker are about: those quoted
    verbatim, else the one sharing the most content words (with the next ones while they share over half as many)."""
    if not sentences:
        return []
    flat = " ".join(before_marker.split())
    quoted = [sentence for sentence in sentences if sentence.text and sentence.text in flat]
    if quoted:
        return quoted
    wanted = set(content_keys(flat)) if flat else set()
    if not wanted:
        return []
    overlaps = [len(wanted & set(sentence.lemmas)) for sentence in sentences]
    best = max(range(len(sentences)), key=lambda index: overlaps[index])
    if overlaps[best] == 0:
        return []
    chosen = [sentences[best]]
    following = best + 1
    while following < len(sentences) and 2 * overlaps[following] > overlaps[best] and len(chosen) < QUOTE_SENTENCES:
        chosen.append(sentences[following])
        following += 1
    return chosen


def citations_for(
    text: str, sources: Sequence[Source], sentences: Mapping[str, Sequence[StoredSentence]] | None = None
) -> list[Citation]:
    """Citations for the markers in `text` that name a provided source; unknown ids are ignored.

    `sentences` maps a source's label to its stored sentences (server.nlp, computed at ingest): a citation
    then spans and quotes the sentences the answer before the marker is about, not the whole excerpt.
    Without them (or when none matches) it spans the excerpt and quotes its beginning."""
    by_label = {source.label: source for source in sources}
    citations: list[Citation] = []
    previous_end = 0
    for label, position in _markers(text):
        source = by_label.get(label)
        if source is None:
            continue
        hit = source.hit
        before = text[max(previous_end, position - QUOTE_CONTEXT_CHARS) : position]
        previous_end = position
        if source.kind == KIND_AHEAD:
            # A pointer to what comes later: where, never what.
            citations.append(Citation(hit.video_id, hit.start_seconds, hit.end_seconds, hit.chunk_id, ""))
            continue
        cited = _cited_sentences(before, (sentences or {}).get(label, ()))
        if cited:
            citations.append(
                Citation(
                    video_id=hit.video_id,
                    start_seconds=min(sentence.start_seconds for sentence in cited),
                    end_seconds=max(sentence.end_seconds for sentence in cited),
                    chunk_id=hit.chunk_id,
                    quoted_text=shorten(" ".join(sentence.text for sentence in cited)),
                )
            )
            continue
        citations.append(
            Citation(
                video_id=hit.video_id,
                start_seconds=hit.start_seconds,
                end_seconds=hit.end_seconds,
                chunk_id=hit.chunk_id,
                quoted_text=shorten(hit.text),
            )
        )
    return citations


def strip_markers(text: str) -> str:
    """Remove citation markers (ids are per turn: an old `[c2]` means nothing in the next prompt)."""

    def drop(match: re.Match[str]) -> str:
        tokens = [token for token in re.split(r"[\s,;]+", match.group(1).strip()) if token]
        return "" if tokens and all(_LABEL.fullmatch(token) for token in tokens) else match.group(0)

    return re.sub(r" ?" + _BRACKETS.pattern, drop, text)


# How an answer says plainly that it does not come from the lecture (the prompt asks for such a label).
_GENERAL_KNOWLEDGE = re.compile(
    r"general knowledge|not (come |coming )?from the (lecture|excerpts?|video|course)"
    r"|(lecture|excerpts?|video|course) (does|do)(n'?t| not) (cover|say|mention|answer|explain)"
    r"|not (covered|mentioned|explained) in the (lecture|excerpts?|video|course)",
    re.IGNORECASE,
)


def declares_general_knowledge(text: str) -> bool:
    """Whether an answer labels what it says as not coming from the lecture."""
    return _GENERAL_KNOWLEDGE.search(text) is not None

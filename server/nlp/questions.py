"""Questions generated from a sentence's dependency parse: what hints ask, what quizzes ask, what the chat's
check-for-understanding asks.

Five shapes, each taken only where the parse is clean enough to turn the sentence around grammatically:

    why        "A flex item overflows because its min-width is auto."   → "Why does a flex item overflow?"
               (also "Because X, Y." and "This is why Y.", whose reason is the sentence before)
    what_if    "If you mutate the same object, React skips the re-render." → "What happens if you mutate the same
               object?"; with an imperative main clause, "What should you do if …?"
    what_is    "A Promise is an object that represents a value …"        → "What is a Promise?"
    what_does  "justify-content distributes free space along the main axis." → "What does justify-content do?"
    what_object  the same sentence                                       → "What does justify-content distribute?"

A question is made from the sentence's own words: the clause it is about, with subject–auxiliary inversion
or do-support ("overflows" → "does … overflow"), and the answer is the verbatim part of the sentence that
answers it. Clauses whose subject is a pronoun that points outside the sentence ("it", "that", "they") make
no question: "Why does it refuse to shrink?" means nothing on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from spacy.tokens import Span, Token

from server.nlp.pipeline import content_keys

WHY, WHAT_IF, WHAT_IS, WHAT_DOES, WHAT_OBJECT = "why", "what_if", "what_is", "what_does", "what_object"
# Subjects that can stand alone in a question; any other pronoun points outside the sentence.
_OPEN_PRONOUNS = frozenset({"you", "we"})
_LEADING = frozenset({"cc", "advmod", "punct", "intj", "discourse", "prep", "npadvmod"})
_SUBJECTS = ("nsubj", "nsubjpass")
_AUXILIARIES = ("aux", "auxpass")
_DO = {"VBZ": "does", "VBP": "do", "VBD": "did"}
_CONDITION_MARKS = {"if": "if", "when": "when", "whenever": "when", "once": "once"}
_POINTING = frozenset({"this", "that", "these", "those", "both", "such"})
MAX_QUESTION_WORDS = 28
MIN_ANSWER_WORDS = 2


@dataclass(frozen=True, slots=True)
class Frame:
    """A question about a sentence and the sentence's answer to it (offsets are within the sentence text)."""

    kind: str
    question: str
    answer: str
    answer_start: int
    answer_end: int
    # The linking word between what is asked about and the answer: "because", "if", "when", "is", a verb.
    cue: str
    # The subject the question is about, as written ("" when the question is about a condition).
    subject: str
    # The answer is in the previous sentence ("This is why …"): `answer` is empty then.
    answer_before: bool = False
    # The question's content keys (server.nlp.pipeline.content_keys), so the request path need not parse it.
    keys: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "question": self.question,
            "answer": self.answer,
            "answer_start": self.answer_start,
            "answer_end": self.answer_end,
            "cue": self.cue,
            "subject": self.subject,
            "answer_before": self.answer_before,
            "keys": list(self.keys),
        }

    @staticmethod
    def from_json(data: dict[str, object]) -> Frame:
        return Frame(
            kind=str(data["kind"]),
            question=str(data["question"]),
            answer=str(data["answer"]),
            answer_start=int(str(data["answer_start"])),
            answer_end=int(str(data["answer_end"])),
            cue=str(data["cue"]),
            subject=str(data["subject"]),
            answer_before=bool(data.get("answer_before", False)),
            keys=tuple(str(key) for key in keys) if isinstance(keys := data.get("keys"), list) else (),
        )


def _text(tokens: Sequence[Token]) -> str:
    """Tokens as written, with their own spacing, trimmed of commas and end punctuation at either end."""
    kept = list(tokens)
    while kept and (kept[-1].is_punct or kept[-1].is_space):
        kept.pop()
    while kept and (kept[0].is_punct or kept[0].is_space):
        kept.pop(0)
    return "".join(token.text_with_ws for token in kept).strip()


def _span_tokens(sentence: Span, start: int, end: int) -> list[Token]:
    """Tokens with absolute indexes start ≤ i < end that lie in the sentence."""
    return [token for token in sentence if start <= token.i < end]


def _subject(verb: Token) -> Token | None:
    return next((child for child in verb.children if child.dep_ in _SUBJECTS), None)


def _standalone(subject: Token) -> bool:
    """A subject that means something outside its sentence."""
    head_words = [token for token in subject.subtree if token.dep_ not in ("det", "poss", "amod", "compound")]
    if subject.pos_ == "PRON" or subject.lower_ in ("this", "that", "these", "those", "everything", "nothing"):
        return subject.lower_ in _OPEN_PRONOUNS
    if any(token.tag_ == "PRP$" and token.lower_ not in ("your", "our") for token in subject.subtree):
        return False
    return bool(head_words)


def _clause_root(tokens: Sequence[Token]) -> Token | None:
    """The head of a run of tokens: the one verb whose head lies outside the run (or that heads itself)."""
    inside = {token.i for token in tokens}
    roots = [token for token in tokens if token.head.i not in inside or token.head.i == token.i]
    verbs = [token for token in roots if token.pos_ in ("VERB", "AUX")]
    return verbs[0] if len(verbs) == 1 else None


def _lower_first(text: str, token: Token, proper: frozenset[str]) -> str:
    """A clause moved from the start of a sentence: its first word loses its capital unless it is a name
    (tagged so, or written with a capital where no sentence starts, anywhere in the transcript)."""
    if token.pos_ == "PROPN" or token._.code or token.text in proper or token.text[1:2].isupper():
        return text
    return text[:1].lower() + text[1:]


def _trim_clauses(tokens: Sequence[Token], root: Token) -> list[Token]:
    """Drop coordinated clauses with their own subject (", and the browser keeps …") and contrasts
    ("while …", "whereas …") from the end of an answer: the answer is about one thing."""
    kept = list(tokens)
    inside = {token.i for token in kept}
    heads = inside | {root.i}
    for token in kept:
        own_clause = token.dep_ == "conj" and token.pos_ in ("VERB", "AUX") and _subject(token) is not None
        contrast = token.dep_ == "advcl" and any(
            c.dep_ == "mark" and c.lower_ in ("while", "whereas") for c in token.children
        )
        if (own_clause or contrast) and token.head.i in heads:
            cut = token.left_edge.i
            while cut - 1 in inside and token.doc[cut - 1].dep_ in ("cc", "punct", "mark"):
                cut -= 1
            return [t for t in kept if t.i < cut]
    return kept


def _opens_sentence(sentence: Span, token: Token) -> bool:
    """`token` starts the sentence, after at most a conjunction or a label ("So", "And", "To recap:")."""
    before = [t for t in sentence if t.i < token.left_edge.i]
    if not before:
        return True
    if any(t.text == ":" for t in before):
        # A label such as "To recap:", not a declaration such as "gap: 1rem puts …".
        return before[-1].text == ":" and len(before) >= 2 and before[-2].pos_ not in ("NOUN", "PROPN")
    return all(t.dep_ in ("cc", "punct", "intj") or t.lower_ in ("so", "also", "now") for t in before)


def as_question(wh: str, clause: Sequence[Token], proper: frozenset[str] = frozenset()) -> str | None:
    """`clause` (a declarative clause with its own subject) asked as a `wh` question, or None when its parse
    does not allow a grammatical one."""
    tokens = list(clause)
    while tokens and tokens[0].dep_ in _LEADING and tokens[0].dep_ not in _SUBJECTS:
        tokens.pop(0)
    while tokens and (tokens[-1].is_punct or tokens[-1].is_space):
        tokens.pop()
    root = _clause_root(tokens)
    if root is None:
        return None
    subject = _subject(root)
    if subject is None or not _standalone(subject):
        return None
    subject_tokens = [token for token in tokens if subject.left_edge.i <= token.i <= subject.right_edge.i]
    if not subject_tokens or subject_tokens[0].i != tokens[0].i or any(t.text == "," for t in subject_tokens):
        return None
    after_subject = [token for token in tokens if token.i > subject.right_edge.i]
    auxiliaries = [t for t in after_subject if t.head.i == root.i and t.dep_ in _AUXILIARIES and t.i < root.i]
    subject_text = _lower_first(_text(subject_tokens), subject_tokens[0], proper)
    if root.lemma_ == "be" and not auxiliaries:
        rest = _text([token for token in after_subject if token.i > root.i])
        middle = _text([token for token in after_subject if token.i < root.i])
        words = [wh, root.lower_, subject_text, middle, rest]
    elif auxiliaries:
        first = auxiliaries[0]
        remainder = _text([token for token in after_subject if token.i != first.i])
        words = [wh, first.lower_, subject_text, remainder]
    elif root.tag_ in _DO:
        middle = _text([token for token in after_subject if token.i < root.i])
        rest = _text([token for token in after_subject if token.i > root.i])
        words = [wh, _DO[root.tag_], subject_text, middle, root.lemma_.lower(), rest]
    else:
        return None
    question = " ".join(word for word in words if word).strip()
    question = question[:1].upper() + question[1:] + "?"
    if len(question.split()) > MAX_QUESTION_WORDS:
        return None
    return question


def _offsets(sentence: Span, tokens: Sequence[Token]) -> tuple[int, int]:
    text = _text(tokens)
    kept = [token for token in tokens if not (token.is_punct or token.is_space)]
    if not kept or not text:
        return 0, 0
    start = kept[0].idx - sentence.start_char
    return start, start + len(text)


def _answer_ok(tokens: Sequence[Token], *, standalone: bool) -> bool:
    """An answer says something by itself: not "… reads like this" nor "it is auto". A `standalone` answer
    (to "What is X?" / "What does X do?") may not point back either: "… solves both problems"."""
    words = [token for token in tokens if not token.is_punct]
    if len(words) < MIN_ANSWER_WORDS:
        return False
    if words[-1].lower_ in ("this", "that", "here", "these", "those"):
        return False
    if words[0].tag_ == "PRP" and words[0].lower_ not in _OPEN_PRONOUNS:
        return False
    return not standalone or not any(w.dep_ in ("det", "predet") and w.lower_ in _POINTING for w in words)


def _frame(
    sentence: Span, kind: str, question: str | None, answer: Sequence[Token], cue: str, subject: str
) -> Frame | None:
    if question is None or not _answer_ok(answer, standalone=kind in (WHAT_IS, WHAT_DOES, WHAT_OBJECT)):
        return None
    start, end = _offsets(sentence, answer)
    return Frame(kind, question, sentence.text[start:end], start, end, cue, subject)


def _closing_comma(sentence: Span, mark: Token) -> Token | None:
    """The comma that closes the clause `mark` introduces (the first one after that clause's last word)."""
    edge = mark.head.right_edge.i
    return next((t for t in sentence if t.i >= edge and t.i > mark.i and t.text == ","), None)


def _clause_subject_text(tokens: Sequence[Token]) -> str:
    root = _clause_root([t for t in tokens if not t.is_punct])
    subject = _subject(root) if root is not None else None
    if subject is None:
        return ""
    return _text([t for t in tokens if subject.left_edge.i <= t.i <= subject.right_edge.i])


def _from_subject(tokens: Sequence[Token]) -> list[Token]:
    """A main clause from its subject (or its verb, for an imperative) on: what precedes it is a parenthesis."""
    root = _clause_root([t for t in tokens if not t.is_punct])
    if root is None:
        return list(tokens)
    subject = _subject(root)
    first = subject.left_edge.i if subject is not None else root.left_edge.i
    return [t for t in tokens if t.i >= min(first, root.i)]


def _why_frames(sentence: Span, proper: frozenset[str]) -> list[Frame]:
    frames: list[Frame] = []
    tokens = list(sentence)
    first_word = next((t for t in tokens if not t.is_punct and t.dep_ != "cc"), None)
    for token in tokens:
        if token.lower_ != "because" or token.dep_ != "mark":
            continue
        if first_word is not None and token.i == first_word.i:
            comma = _closing_comma(sentence, token)
            if comma is None:
                continue
            reason = _span_tokens(sentence, token.i + 1, comma.i)
            main = _from_subject(_span_tokens(sentence, comma.i + 1, sentence.end))
        else:
            main = _span_tokens(sentence, sentence.start, token.i)
            reason = _span_tokens(sentence, token.i + 1, token.head.right_edge.i + 1)
        frame = _frame(sentence, WHY, as_question("Why", main, proper), reason, "because", _clause_subject_text(main))
        if frame is not None:
            frames.append(frame)
    for token in tokens:
        # "This is why X." / "That's why X." / "…, which is why X.": X happens for a reason said before.
        if token.lower_ != "why" or token.i - 2 < sentence.start or token.nbor(-1).lemma_ != "be":
            continue
        pointer = token.nbor(-2)
        if pointer.lower_ not in ("this", "that", "which"):
            continue
        effect = _span_tokens(sentence, token.i + 1, sentence.end)
        question = as_question("Why", effect, proper)
        if question is None:
            continue
        subject = _clause_subject_text(effect)
        if pointer.lower_ == "which":
            frame = _frame(sentence, WHY, question, _span_tokens(sentence, sentence.start, pointer.i), "why", subject)
            if frame is not None:
                frames.append(frame)
        else:
            frames.append(Frame(WHY, question, "", 0, 0, "why", subject, answer_before=True))
    return frames


def _has_dangling_pronoun(tokens: Sequence[Token]) -> bool:
    return any(
        token.pos_ == "PRON" and token.tag_ != "WDT" and token.lower_ not in (*_OPEN_PRONOUNS, "your", "our")
        for token in tokens
    )


def _condition_frames(sentence: Span, proper: frozenset[str]) -> list[Frame]:
    tokens = [t for t in sentence if not t.is_space]
    leading = 0
    while leading < len(tokens) and tokens[leading].lower_ in ("so", "and", "but", "now", ",", "then"):
        leading += 1
    if leading >= len(tokens):
        return []
    mark = tokens[leading]
    word = _CONDITION_MARKS.get(mark.lower_)
    if word is None or mark.dep_ not in ("mark", "advmod"):
        return []
    comma = _closing_comma(sentence, mark)
    if comma is None:
        return []
    condition = _span_tokens(sentence, mark.i + 1, comma.i)
    if not condition or len(condition) > 20 or _has_dangling_pronoun(condition):
        return []
    if not any(token.pos_ in ("VERB", "AUX") for token in condition):
        return []
    main = _from_subject(_span_tokens(sentence, comma.i + 1, sentence.end))
    main_root = _clause_root([t for t in main if not t.is_punct])
    if main_root is None:
        return []
    imperative = (
        main_root.tag_ == "VB"
        and _subject(main_root) is None
        and not any(child.dep_ in _AUXILIARIES for child in main_root.children)
    )
    if not imperative:
        main_subject = _subject(main_root)
        if main_subject is None or not _standalone(main_subject):
            return []
    lead = "What should you do" if imperative else "What happens"
    question = f"{lead} {word} {_lower_first(_text(condition), condition[0], proper)}?"
    if len(question.split()) > MAX_QUESTION_WORDS:
        return []
    frame = _frame(sentence, WHAT_IF, question, main, word, "")
    return [frame] if frame is not None else []


def _definition_frames(sentence: Span, proper: frozenset[str]) -> list[Frame]:
    root = sentence.root
    subject = _subject(root)
    if subject is None or not _standalone(subject) or subject.pos_ == "PRON" or not _opens_sentence(sentence, subject):
        return []
    subject_tokens = [t for t in sentence if subject.left_edge.i <= t.i <= subject.right_edge.i]
    if any(token.pos_ in ("VERB", "AUX") or token.is_punct for token in subject_tokens):
        return []
    # Merged identifiers get odd tags (`justify-content` as an adjective): they are names of things anyway.
    if (subject.pos_ not in ("NOUN", "PROPN") and not (subject._.code or "-" in subject.text)) or subject.like_num:
        return []
    if any(child.dep_ == "neg" for child in root.children):
        return []
    subject_text = _text(subject_tokens)
    display = _lower_first(subject_text, subject_tokens[0], proper)
    if root.lemma_ == "be" and root.tag_ in ("VBZ", "VBP"):
        attribute = next((child for child in root.children if child.dep_ == "attr"), None)
        if attribute is None or attribute.pos_ not in ("NOUN", "PROPN"):
            return []
        answer = _trim_clauses(_span_tokens(sentence, attribute.left_edge.i, sentence.end), root)
        frame = _frame(sentence, WHAT_IS, f"What {root.lower_} {display}?", answer, root.lower_, subject_text)
        return [frame] if frame is not None else []
    if root.pos_ == "VERB" and root.tag_ in ("VBZ", "VBP") and root.lemma_ not in ("have", "do", "get"):
        if subject.i > root.i or not any(c.dep_ in ("dobj", "prep", "dative", "attr", "acomp") for c in root.children):
            return []
        answer = _trim_clauses(_span_tokens(sentence, root.i, sentence.end), root)
        question = f"What {_DO[root.tag_]} {display} do?"
        frames = [_frame(sentence, WHAT_DOES, question, answer, root.lower_, subject_text)]
        direct_object = next((child for child in root.children if child.dep_ == "dobj"), None)
        if direct_object is not None and direct_object.pos_ in ("NOUN", "PROPN") and not direct_object._.code:
            about_object = f"What {_DO[root.tag_]} {display} {root.lemma_.lower()}?"
            answer = _trim_clauses(_span_tokens(sentence, direct_object.left_edge.i, sentence.end), root)
            frames.append(_frame(sentence, WHAT_OBJECT, about_object, answer, root.lower_, subject_text))
        return [frame for frame in frames if frame is not None]
    return []


def frames_of(sentence: Span, proper: frozenset[str] = frozenset()) -> list[Frame]:
    """Every question the sentence answers that its parse lets us ask, the most specific first. `proper`:
    words the transcript capitalises where no sentence starts (names keep their capital in a question)."""
    if sentence.text.rstrip().endswith("?"):
        return []
    frames = [
        *_why_frames(sentence, proper),
        *_condition_frames(sentence, proper),
        *_definition_frames(sentence, proper),
    ]
    seen: set[str] = set()
    unique: list[Frame] = []
    for frame in frames:
        if frame.question not in seen:
            seen.add(frame.question)
            unique.append(replace(frame, keys=tuple(content_keys(frame.question))))
    return unique

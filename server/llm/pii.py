"""Redact personal data from text before it leaves for an upstream model, with Microsoft Presidio.

Presidio's analyzer finds the spans (its recognizers, checksums and context scoring, and named entities from
the project's spaCy pipeline, `server/nlp/pipeline.py`); its anonymizer replaces each with a placeholder
naming its kind:

- `[EMAIL]`       addresses whose domain ends in a public suffix (tldextract's bundled list: it is never
                  fetched). Left alone: `scp`-style remotes (`git@github.com:org/x`), retina asset names
                  (`logo@2x.png`) and `user@localhost`.
- `[IBAN]`        Presidio's per-country IBAN formats (groups of four may be spaced), mod-97 valid.
- `[CARD]`        13-19 digits, unseparated or printed in card groupings (4-4-4-4[-3], 4-6-5, 4-6-4) with
                  spaces, dashes or dots, with a major network's issuer prefix, passing the Luhn check.
- `[NATIONAL_ID]` US Social Security numbers (Presidio drops never-issued areas and groups and the well-known
                  sample numbers such as `123-45-6789`); UK National Insurance numbers `AB 12 34 56 C`;
                  Canadian Social Insurance numbers `ddd-ddd-ddd` passing Luhn.
- `[IP]`          IPv4 addresses, and IPv6 addresses with at least three groups. Loopback, unspecified,
                  reserved and multicast addresses (`127.0.0.1`, `0.0.0.0`, `255.255.255.0`, `::1`) identify
                  nobody and are everywhere in networking lectures, so they stay.
- `[PHONE]`       what libphonenumber accepts as a valid number with its digits grouped as the numbering plan
                  groups them, read as US or UK numbers when there is no country code: `+44 20 7946 0958`,
                  `0044 20 7946 0958`, `020 7946 0958`, `(415) 555-2671`, `415.555.2671`, `1-800-555-0199`.
- `[PERSON]`      people's names the named-entity recogniser finds.
- `[LOCATION]`    places it finds (cities, countries, regions, facilities), and street addresses
                  (`42 Elm Street`, `221B Baker St`).

Names and places are looked for in what students write (`redact`, and the `user` messages of
`redact_messages`), not in system or assistant messages: those hold the course's own transcripts, whose
people and places (`Ada Lovelace`, `CERN in Geneva`) are the subject being taught, and the model's answers to
questions that were already redacted. What the recogniser finds is left in the text when it cannot be a name:
a word that is not a capitalised proper noun (`fff`, `evens`, a sentence's first verb), digits or symbols
(`calc(100% - 24px`, `01:02:03`), code (`Date.now()`, `useEffect`), or a technology or an eponym that names a
technique (`Python`, `React Hooks`, `Git`, `Dijkstra`, `Bellman-Ford`).

Deliberately left alone, because lecture content is full of them: bare digit runs (ids, years, Unix
timestamps in milliseconds), clock times and media timestamps (`12:30`, `00:01:05.500`), version numbers
(`1.2.3`), CSS values (`#fff`, `1fr`, `100px`), dates (`2024-01-15`), UUIDs and hashes, and code
(`Promise.all`, `useEffect(() => {}, [])`, `std::vector`, `a[1::2]`, `@decorator`, `@scope/package`).

Known ambiguity: a four-part version number that is also a valid IPv4 address (`10.0.0.1`) is redacted;
the two cannot be told apart from the text alone.

The analyzer is built once per process, on first use (`warm_up` builds it ahead of the first request). A
redaction with names runs spaCy's tagger and recogniser (a few milliseconds for a question) when the text has a
capitalised word that is not a stop word, and only the pattern recognisers otherwise; async callers run it in a
worker thread. Context words ("SSN", "phone") raise a pattern's score in what students write; course content
and answers get the patterns at their own scores. The results for the last couple of thousand short texts are
kept, so a question redacted when its turn begins, and the history resent on every later turn, are analysed
once. The recognisers, and how each is narrowed for lecture content, are in `pii_recognizers.py`.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine
from presidio_anonymizer import AnonymizerEngine
from presidio_anonymizer.entities import OperatorConfig
from spacy.lang.en.stop_words import STOP_WORDS

from server.llm.pii_recognizers import NAMED_ENTITIES, recognisers
from server.llm.provider import ChatMessage
from server.nlp import pipeline

EMAIL = "EMAIL"
PHONE = "PHONE"
CARD = "CARD"
IP = "IP"
IBAN = "IBAN"
NATIONAL_ID = "NATIONAL_ID"
PERSON = "PERSON"
LOCATION = "LOCATION"

# Presidio's entity types, each onto the placeholder it becomes.
KIND_OF_ENTITY = {
    "EMAIL_ADDRESS": EMAIL,
    "PHONE_NUMBER": PHONE,
    "CREDIT_CARD": CARD,
    "IP_ADDRESS": IP,
    "IBAN_CODE": IBAN,
    "US_SSN": NATIONAL_ID,
    "UK_NINO": NATIONAL_ID,
    "CA_SIN": NATIONAL_ID,
    "PERSON": PERSON,
    "LOCATION": LOCATION,
}
_PATTERN_ENTITIES = tuple(entity for entity in KIND_OF_ENTITY if entity not in NAMED_ENTITIES)
_LANGUAGE = "en"
# Below this a recogniser's own "weak" patterns (bare 9-digit runs as SSNs, unvalidated card-like runs) stay.
SCORE_THRESHOLD = 0.4
NAMES_IN_ROLES = frozenset({"user"})


@dataclass(frozen=True, slots=True)
class RedactionResult:
    text: str
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True, slots=True)
class RedactedMessages:
    messages: list[ChatMessage]
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


# --- the engine ---------------------------------------------------------------------------------------------


class _ProjectSpacy(SpacyNlpEngine):
    """Presidio's spaCy engine on the project's pipeline (loaded once, never downloaded), through its lock."""

    def __init__(self) -> None:
        ignored = ["ORGANIZATION", "DATE_TIME", "NRP", "CARDINAL", "EVENT", "LANGUAGE", "LAW", "MONEY"]
        ignored += ["ORDINAL", "PERCENT", "PRODUCT", "QUANTITY", "WORK_OF_ART"]
        super().__init__(ner_model_configuration=NerModelConfiguration(labels_to_ignore=ignored))

    def load(self) -> None:
        # Presidio declares the attribute None until `load`.
        self.nlp = {_LANGUAGE: pipeline.nlp()}  # type: ignore[assignment]

    def process_text(self, text: str, language: str) -> NlpArtifacts:
        return self._doc_to_nlp_artifact(pipeline.parse_entities(text), language)

    def tokens_only(self, text: str) -> NlpArtifacts:
        """Artifacts for the pattern recognisers alone: tokens (for context words such as "SSN" or "phone"),
        no tagging or entities. Of "", artifacts with no context at all."""
        doc = pipeline.tokenize(text)
        return NlpArtifacts(
            entities=[],
            tokens=doc,
            tokens_indices=[token.idx for token in doc],
            lemmas=[token.lower_ for token in doc],
            nlp_engine=self,
            language=_LANGUAGE,
            scores=[],
        )


@dataclass(frozen=True, slots=True)
class _Engines:
    nlp: _ProjectSpacy
    analyzer: AnalyzerEngine
    anonymizer: AnonymizerEngine
    operators: dict[str, OperatorConfig]
    no_context: NlpArtifacts


_build_lock = threading.Lock()
_built: list[_Engines] = []


def _engines() -> _Engines:
    if _built:
        return _built[0]
    with _build_lock:
        if not _built:
            nlp_engine = _ProjectSpacy()
            nlp_engine.load()
            registry = RecognizerRegistry(supported_languages=[_LANGUAGE])
            for recogniser in recognisers():
                registry.add_recognizer(recogniser)
            analyzer = AnalyzerEngine(
                registry=registry,
                nlp_engine=nlp_engine,
                supported_languages=[_LANGUAGE],
                default_score_threshold=SCORE_THRESHOLD,
            )
            operators = {
                entity: OperatorConfig("replace", {"new_value": f"[{kind}]"}) for entity, kind in KIND_OF_ENTITY.items()
            }
            anonymizer = AnonymizerEngine()  # type: ignore[no-untyped-call]
            no_context = nlp_engine.tokens_only("")
            _built.append(_Engines(nlp_engine, analyzer, anonymizer, operators, no_context))
    return _built[0]


def warm_up() -> None:
    """Build the analyzer (and load spaCy's pipeline) ahead of the first request."""
    redact("Warm up with Jane at jane@example.com.")


_WORD = re.compile(r"[^\W\d_][\w'’-]*")


def may_hold_a_name(text: str) -> bool:
    """A capitalised word that is not a stop word (`What`, `How`, `I`): without one the recogniser could only
    find what `pii_recognizers.could_be_a_name` rejects, and its few milliseconds are saved."""
    for match in _WORD.finditer(text):
        word = match.group()
        if word[0].isupper() and not word.isupper() and word.lower() not in STOP_WORDS:
            return True
    return False


def _analyse(text: str, names: bool) -> tuple[str, tuple[tuple[str, int], ...]]:
    engines = _engines()
    if names and may_hold_a_name(text):
        found = engines.analyzer.analyze(text, language=_LANGUAGE, entities=list(KIND_OF_ENTITY))
    else:
        # Course content and answers (names=False) can be long: their patterns keep their own scores, without
        # the tokenizer's pass for context words (nor waiting for the pipeline's lock).
        artifacts = engines.nlp.tokens_only(text) if names else engines.no_context
        found = engines.analyzer.analyze(
            text, language=_LANGUAGE, entities=list(_PATTERN_ENTITIES), nlp_artifacts=artifacts
        )
    if not found:
        return text, ()
    anonymized = engines.anonymizer.anonymize(text, found, operators=engines.operators)  # type: ignore[arg-type]
    counts: dict[str, int] = {}
    for item in anonymized.items:
        kind = KIND_OF_ENTITY[item.entity_type]
        counts[kind] = counts.get(kind, 0) + 1
    return anonymized.text, tuple(sorted(counts.items()))


# Questions and answers come back in every later turn's history; a turn's system message (transcript excerpts)
# is new each turn and long, so it is not kept.
_CACHED_CHARS = 4_000
_analyse_cached = functools.lru_cache(maxsize=2048)(_analyse)


def redact(text: str, *, names: bool = True) -> RedactionResult:
    """Replace personal data in `text` with `[KIND]` placeholders and count the replacements per kind;
    `names=False` leaves people's names and places to the text (course content, model output)."""
    redacted, counts = (_analyse_cached if len(text) <= _CACHED_CHARS else _analyse)(text, names)
    return RedactionResult(text=redacted, counts=dict(counts))


def redact_messages(messages: Sequence[ChatMessage], *, roles: Collection[str] | None = None) -> RedactedMessages:
    """Redact each message (only those whose role is in `roles`, when given); names and places only in the
    roles students write (`NAMES_IN_ROLES`); counts are summed."""
    redacted: list[ChatMessage] = []
    counts: dict[str, int] = {}
    for message in messages:
        if roles is not None and message.role not in roles:
            redacted.append(message)
            continue
        result = redact(message.content, names=message.role in NAMES_IN_ROLES)
        for kind, count in result.counts.items():
            counts[kind] = counts.get(kind, 0) + count
        redacted.append(message if result.text == message.content else ChatMessage(message.role, result.text))
    return RedactedMessages(messages=redacted, counts=counts)

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
once.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import tldextract
from presidio_analyzer import (
    AnalyzerEngine,
    EntityRecognizer,
    Pattern,
    PatternRecognizer,
    RecognizerRegistry,
    RecognizerResult,
)
from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import (
    CaSinRecognizer,
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    PhoneRecognizer,
    SpacyRecognizer,
    UkNinoRecognizer,
    UsSsnRecognizer,
)
from presidio_anonymizer import AnonymizerEngine
from presidio_anonymizer.entities import OperatorConfig
from spacy.lang.en.stop_words import STOP_WORDS
from spacy.tokens import Span

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
_NAMED_ENTITIES = ("PERSON", "LOCATION")
_PATTERN_ENTITIES = tuple(entity for entity in KIND_OF_ENTITY if entity not in _NAMED_ENTITIES)
_LANGUAGE = "en"
# Below this a recogniser's own "weak" patterns (bare 9-digit runs as SSNs, unvalidated card-like runs) stay.
SCORE_THRESHOLD = 0.4
NAMES_IN_ROLES = frozenset({"user"})

# Capitalised words the recogniser takes for people or places that, in a programming course, are tools,
# languages, platforms or the eponyms of techniques.
_NOT_NAMES = """
    android angular ansible apache arduino azure babel bash bayes bellman bezier boolean bootstrap cassandra
    chrome chromium clojure cobol dart debian deno dijkstra django docker dynamodb elasticsearch elixir elm
    erlang euler excel express fastapi fibonacci figma firebase firefox flask floyd flutter ford fortran
    fourier gatsby gauss git github gitlab go golang gradle graphql grpc hadoop hamming haskell heroku huffman
    ios java javascript jenkins jest jquery jupyter kafka kali karatsuba kotlin kruskal kubernetes lagrange
    laplace laravel levenshtein linux liskov lua macos mariadb markov matlab maven mongo mongodb mysql neo4j
    netlify newton next nginx node notion numpy nuxt oracle pandas pascal perl php postgres postgresql postman
    prim prisma pytest python pytorch rails react redis redux ruby rust safari sass scala scikit selenium
    sklearn solidity spark spring sqlite svelte swift tailwind tensorflow terraform turing typescript ubuntu
    unity unix vercel vim vite vue warshall webpack windows xcode yarn
"""
NOT_NAMES = frozenset(_NOT_NAMES.split())

# A house number, one to three capitalised words and a street type: "42 Elm Street", "221B Baker St".
_STREET_ADDRESS = Pattern(
    "street address",
    r"\b\d{1,5}[A-Za-z]?,? (?:[A-Z][a-z]+ ){1,3}(?:Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Drive|Dr|Boulevard|Blvd"
    r"|Way|Court|Ct|Place|Pl|Terrace|Close|Crescent|Square|Sq|Parkway|Highway|Hwy|Row|Gardens|Grove|Walk)\b",
    0.6,
)
_ADDRESS_CONTEXT = ["live", "address", "home", "street", "from", "at"]


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


# --- recognisers --------------------------------------------------------------------------------------------

# The Public Suffix List as tldextract ships it: no cache directory, no URL to refresh it from.
_SUFFIXES = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)


class _Email(EmailRecognizer):
    """Presidio's email recogniser, with lookarounds that leave `scp` remotes and `@2x` asset names alone, and
    the suffix check against the bundled list (Presidio's own calls tldextract's default extractor, which
    downloads the list on first use)."""

    def __init__(self) -> None:
        pattern = (
            r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@(?!\d+x\.)(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+"
            r"[A-Za-z]{2,63}(?![\w-]|:[\w~/])"
        )
        super().__init__(patterns=[Pattern("email", pattern, 0.5)])

    def validate_result(self, pattern_text: str) -> bool:
        return bool(_SUFFIXES(pattern_text.rsplit("@", 1)[-1]).suffix)


def card_network_prefix(digits: str) -> bool:
    """Issuer prefixes of the major networks: Visa 4, Mastercard 51-55 and 2221-2720, Maestro 5x/6x,
    Amex 34/37, Diners 30/36/38/39, JCB 35, Discover/UnionPay 6x. Rules out ids and millisecond timestamps
    (which start with 1) and runs of years (19xx/20xx)."""
    if digits[:1] in ("4", "5", "6"):
        return True
    if digits[:1] == "3":
        return digits[:2] in ("30", "34", "35", "36", "37", "38", "39")
    return len(digits) >= 4 and 2221 <= int(digits[:4]) <= 2720


class _Card(CreditCardRecognizer):
    """Presidio's Luhn check on card numbers unseparated or in the groupings cards are printed in
    (4-4-4-4[-3], Amex 4-6-5, Diners 4-6-4) with one kind of separator (space, dash or dot); never glued to
    words, decimals or further digit groups."""

    def __init__(self) -> None:
        pattern = (
            r"(?<![\w.,+-])(?<!\d )"
            r"(?:\d{13,19}|\d{4}([ .-])\d{4}\1\d{4}\1\d{4}(?:\1\d{1,3})?|\d{4}([ .-])\d{6}\2\d{4,5})"
            r"(?![\w-]|[.,]\d| \d)"
        )
        super().__init__(patterns=[Pattern("card", pattern, 0.3)], replacement_pairs=[("-", ""), (" ", ""), (".", "")])

    def validate_result(self, pattern_text: str) -> bool:
        digits = "".join(char for char in pattern_text if char.isdigit())
        return card_network_prefix(digits) and bool(super().validate_result(pattern_text))


class _CanadianSin(CaSinRecognizer):
    """Dashes only: space-separated digit triples are as often plain numbers ("rows 120 240 360"), and one in
    ten of those would pass Luhn."""

    def __init__(self) -> None:
        super().__init__(patterns=[Pattern("SIN", r"(?<![\w.+-])[1-79]\d{2}-\d{3}-\d{3}(?![\w-]|[.,]\d)", 0.5)])


def _identifying_ip(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return not (address.is_loopback or address.is_unspecified or address.is_reserved or address.is_multicast)


class _Ip(IpRecognizer):
    def invalidate_result(self, pattern_text: str) -> bool:
        # Forms with fewer than three IPv6 groups (`A::B`, `1::2`, `::2`) are far more often C++/Rust paths
        # and Python slices than addresses.
        if ":" in pattern_text and sum(1 for group in pattern_text.split("%", 1)[0].split(":") if group) < 3:
            return True
        return bool(super().invalidate_result(pattern_text)) or not _identifying_ip(pattern_text)


_NAME_PARTICLES = frozenset({"de", "van", "von", "der", "da", "di", "la", "le", "bin", "al"})


def _technical(word: str) -> bool:
    parts = word.removesuffix("'s").lower().split("-")
    return all(part in NOT_NAMES for part in parts)


def could_be_a_name(span: Span) -> bool:
    """Every word a capitalised proper noun (or a particle: `van`, `de`), none of them code or a technical
    term."""
    words = [token for token in span if token.text.lower() not in _NAME_PARTICLES]
    if not words:
        return False
    for token in words:
        text = token.text
        letters = text.removesuffix("'s").replace("-", "").replace("'", "")
        if token._.code or token.pos_ != "PROPN" or not letters.isalpha() or not text[:1].isupper():
            return False
        if text.isupper() or _technical(text):
            return False
    return True


class _Names(SpacyRecognizer):
    """People and places from spaCy's recogniser, kept only when their words could be a name."""

    def __init__(self) -> None:
        super().__init__(supported_entities=list(_NAMED_ENTITIES))

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        found: list[RecognizerResult] = super().analyze(text, entities, nlp_artifacts)
        if nlp_artifacts is None or not found:
            return found
        doc = nlp_artifacts.tokens
        kept = []
        for result in found:
            span = doc.char_span(result.start, result.end, alignment_mode="expand")
            if span is not None and could_be_a_name(span):
                kept.append(result)
        return kept


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
            # Numbers without a country code are read as US or UK ones, their digits grouped as the numbering
            # plan groups them (leniency 2, STRICT_GROUPING): thousands and dotted quads are not phone numbers.
            phone = PhoneRecognizer(supported_regions=("US", "GB"), leniency=2)
            recognisers: list[EntityRecognizer] = [_Email(), IbanRecognizer(), _Card(), UsSsnRecognizer()]
            recognisers += [UkNinoRecognizer(), _CanadianSin(), _Ip(), phone, _Names()]
            recognisers.append(
                PatternRecognizer("LOCATION", patterns=[_STREET_ADDRESS], context=_ADDRESS_CONTEXT, name="Address")
            )
            for recogniser in recognisers:
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
    find what `could_be_a_name` rejects, and its few milliseconds are saved."""
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

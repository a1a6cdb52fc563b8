"""The recognisers behind `pii.redact`: Presidio's own where they fit, narrowed where lecture content would
set them off (asset names, code, version numbers, technology names), and one for street addresses."""

from __future__ import annotations

import ipaddress

import tldextract
from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
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
from spacy.tokens import Span

# What spaCy's recogniser finds; everything else is found by patterns.
NAMED_ENTITIES = ("PERSON", "LOCATION")

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
        super().__init__(supported_entities=list(NAMED_ENTITIES))

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


def recognisers() -> list[EntityRecognizer]:
    """A fresh set of every recogniser redaction uses."""
    # Numbers without a country code are read as US or UK ones, their digits grouped as the numbering plan
    # groups them (leniency 2, STRICT_GROUPING): thousands and dotted quads are not phone numbers.
    phone = PhoneRecognizer(supported_regions=("US", "GB"), leniency=2)
    found: list[EntityRecognizer] = [_Email(), IbanRecognizer(), _Card(), UsSsnRecognizer()]
    found += [UkNinoRecognizer(), _CanadianSin(), _Ip(), phone, _Names()]
    found.append(PatternRecognizer("LOCATION", patterns=[_STREET_ADDRESS], context=_ADDRESS_CONTEXT, name="Address"))
    return found

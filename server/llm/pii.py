"""Redact personal data from text before it leaves for an upstream model.

Replaced, each with a placeholder naming its kind:

- `[EMAIL]`       addresses with a dotted domain. Left alone: `scp`-style remotes (`git@github.com:org/x`)
                  and retina asset names (`logo@2x.png`).
- `[IBAN]`        2 letters, 2 check digits, 11-30 letters/digits (groups of four may be spaced),
                  mod-97 valid.
- `[CARD]`        13-19 digits, unseparated or printed in card groupings (4-4-4-4[-3], 4-6-5, 4-6-4) with
                  spaces or dashes, with a major network's issuer prefix, passing the Luhn check.
- `[NATIONAL_ID]` US Social Security numbers `ddd-dd-dddd` (area not 000/666/9xx, group not 00, serial not
                  0000); UK National Insurance numbers `AB 12 34 56 C` (valid prefix letters, spaces
                  optional); Canadian Social Insurance numbers `ddd-ddd-ddd` passing Luhn.
- `[IP]`          IPv4 addresses, and IPv6 addresses with at least three groups. Loopback, unspecified,
                  reserved and multicast addresses (`127.0.0.1`, `0.0.0.0`, `255.255.255.0`, `::1`) identify
                  nobody and are everywhere in networking lectures, so they stay.
- `[PHONE]`       international numbers with a leading `+` or `00` (8-15 digits, spaces/dots/dashes/brackets
                  between groups) and North American numbers `(555) 123-4567`, `555-123-4567`,
                  `555.123.4567`, `555 123 4567`, optionally prefixed `1-`.

Deliberately left alone, because lecture content is full of them: bare digit runs (ids, years, Unix
timestamps in milliseconds; only a 13-19 digit run with a card prefix that passes Luhn counts), clock
times and media timestamps (`12:30`, `00:01:05.500`), version numbers (`1.2.3`), CSS values (`#fff`, `1fr`,
`100px`), dates (`2024-01-15`), UUIDs and hashes, and code (`Promise.all`, `useEffect(() => {}, [])`,
`std::vector`, `a[1::2]`, `@decorator`, `@scope/package`).

Known ambiguity: a four-part version number that is also a valid IPv4 address (`10.0.0.1`) is redacted;
the two cannot be told apart from the text alone.

Kinds are applied in the order above; placeholders contain no digits, so a later pattern never re-matches
an earlier replacement.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from server.llm.provider import ChatMessage

EMAIL = "EMAIL"
PHONE = "PHONE"
CARD = "CARD"
IP = "IP"
IBAN = "IBAN"
NATIONAL_ID = "NATIONAL_ID"


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


# --- checksums ----------------------------------------------------------------------------------------------


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check used by payment cards and Canadian SINs."""
    if not digits.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def iban_valid(candidate: str) -> bool:
    """ISO 13616: move the first four characters to the end, letters to 10..35, and the number mod 97 is 1."""
    compact = candidate.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34 or not compact.isalnum() or not compact.isascii():
        return False
    if not (compact[:2].isalpha() and compact[2:4].isdigit()):
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(char, 36)) for char in rearranged)
    return int(number) % 97 == 1


# --- patterns -----------------------------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@(?!\d+x\.)(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
    r"(?![\w-]|:[\w~/])"
)

_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])")

# Unseparated, or in the groupings cards are printed in (4-4-4-4[-3], Amex 4-6-5, Diners 4-6-4), with one
# kind of separator; never glued to words, decimals or further digit groups.
_CARD = re.compile(
    r"(?<![\w.,+-])(?<!\d )"
    r"(?:\d{13,19}|\d{4}([ -])\d{4}\1\d{4}\1\d{4}(?:\1\d{1,3})?|\d{4}([ -])\d{6}\2\d{4,5})"
    r"(?![\w-]|[.,]\d| \d)"
)

_US_SSN = re.compile(r"(?<![\w.+-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w-]|\.\d)")
# Prefix letters: not D, F, I, Q, U, V; second not O; a few pairs are never issued.
_UK_NINO = re.compile(r"\b(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b")
# Dashes only: space-separated digit triples are as often plain numbers ("rows 120 240 360"), and one
# in ten of those would pass Luhn.
_CA_SIN = re.compile(r"(?<![\w.+-])\d{3}-\d{3}-\d{3}(?![\w-]|[.,]\d)")

_IPV4 = re.compile(
    r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?!\w|\.\d)"
)
# A loose candidate (hex groups and colons, optional trailing IPv4 and zone); `ipaddress` decides.
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?:%[\w.]+)?(?![\w:])"
)

_PHONE_INTERNATIONAL = re.compile(
    r"(?<![\w+])(?:\+|\b00)[1-9]\d{0,2}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{1,5}){1,6}(?![\w-]|[.:]\d)"
)
_PHONE_NANP = re.compile(r"(?<![\w.+-])(?:1[ .-])?(?:\([2-9]\d{2}\) ?|[2-9]\d{2}[ .-])\d{3}[ .-]\d{4}(?![\w-]|[.:]\d)")


def _digits(text: str) -> str:
    return "".join(char for char in text if char.isdigit())


def card_network_prefix(digits: str) -> bool:
    """Issuer prefixes of the major networks: Visa 4, Mastercard 51-55 and 2221-2720, Maestro 5x/6x,
    Amex 34/37, Diners 30/36/38/39, JCB 35, Discover/UnionPay 6x. Rules out ids and millisecond timestamps
    (which start with 1) and runs of years (19xx/20xx)."""
    if digits[:1] in ("4", "5", "6"):
        return True
    if digits[:1] == "3":
        return digits[:2] in ("30", "34", "35", "36", "37", "38", "39")
    return len(digits) >= 4 and 2221 <= int(digits[:4]) <= 2720


def _is_card(match: re.Match[str]) -> bool:
    digits = _digits(match.group())
    return 13 <= len(digits) <= 19 and card_network_prefix(digits) and luhn_valid(digits)


def _is_iban(match: re.Match[str]) -> bool:
    return iban_valid(match.group())


def _is_sin(match: re.Match[str]) -> bool:
    return luhn_valid(_digits(match.group()))


def _is_identifying_ip(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return not (address.is_loopback or address.is_unspecified or address.is_reserved or address.is_multicast)


def _is_ipv4(match: re.Match[str]) -> bool:
    return _is_identifying_ip(match.group())


def _is_ipv6(match: re.Match[str]) -> bool:
    text = match.group()
    # Forms with fewer than three groups (`A::B`, `1::2`, `::2`) are far more often C++/Rust paths and
    # Python slices than addresses.
    if sum(1 for group in text.split("%", 1)[0].split(":") if group) < 3:
        return False
    return _is_identifying_ip(text)


def _is_international_phone(match: re.Match[str]) -> bool:
    digits = _digits(match.group())
    if match.group().startswith("00"):
        digits = digits[2:]
    return 8 <= len(digits) <= 15


_Check = Callable[[re.Match[str]], bool]

_RULES: tuple[tuple[str, re.Pattern[str], _Check | None], ...] = (
    (EMAIL, _EMAIL, None),
    (IBAN, _IBAN, _is_iban),
    (CARD, _CARD, _is_card),
    (NATIONAL_ID, _US_SSN, None),
    (NATIONAL_ID, _UK_NINO, None),
    (NATIONAL_ID, _CA_SIN, _is_sin),
    (IP, _IPV4, _is_ipv4),
    (IP, _IPV6, _is_ipv6),
    (PHONE, _PHONE_INTERNATIONAL, _is_international_phone),
    (PHONE, _PHONE_NANP, None),
)


def redact(text: str) -> RedactionResult:
    """Replace personal data in `text` with `[KIND]` placeholders and count the replacements per kind."""
    counts: dict[str, int] = {}
    for kind, pattern, check in _RULES:

        def replace(match: re.Match[str], kind: str = kind, check: _Check | None = check) -> str:
            if check is not None and not check(match):
                return match.group()
            counts[kind] = counts.get(kind, 0) + 1
            return f"[{kind}]"

        text = pattern.sub(replace, text)
    return RedactionResult(text=text, counts=counts)


def redact_messages(messages: Sequence[ChatMessage], *, roles: Collection[str] | None = None) -> RedactedMessages:
    """Redact each message (only those whose role is in `roles`, when given); counts are summed."""
    redacted: list[ChatMessage] = []
    counts: dict[str, int] = {}
    for message in messages:
        if roles is not None and message.role not in roles:
            redacted.append(message)
            continue
        result = redact(message.content)
        for kind, count in result.counts.items():
            counts[kind] = counts.get(kind, 0) + count
        redacted.append(message if result.text == message.content else ChatMessage(message.role, result.text))
    return RedactedMessages(messages=redacted, counts=counts)

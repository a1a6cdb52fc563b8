"""PII redaction: what must be caught, and lecture content and technical questions that must come through
untouched."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.llm.pii import redact, redact_messages
from server.llm.provider import ChatMessage

POSITIVES: list[tuple[str, str, str]] = [
    # (kind, text, expected)
    ("EMAIL", "write to jane.doe+course@example.co.uk today", "write to [EMAIL] today"),
    ("EMAIL", "Mail me: MAX_MUSTER@uni-hamburg.de.", "Mail me: [EMAIL]."),
    ("PHONE", "call +44 20 7946 0958 after class", "call [PHONE] after class"),
    ("PHONE", "my cell is +1 (415) 555-2671", "my cell is [PHONE]"),
    ("PHONE", "+49 (0)30 1234567", "[PHONE]"),
    ("PHONE", "+33 1 23 45 67 89", "[PHONE]"),
    ("PHONE", "+4915112345678", "[PHONE]"),
    ("PHONE", "0044 20 7946 0958", "[PHONE]"),
    ("PHONE", "(415) 555-2671", "[PHONE]"),
    ("PHONE", "text 415-555-2671 or 415.555.2671", "text [PHONE] or [PHONE]"),
    ("PHONE", "415 555 2671", "[PHONE]"),
    ("PHONE", "1-800-555-0199", "[PHONE]"),
    ("PHONE", "office 020 7946 0958", "office [PHONE]"),
    ("CARD", "card 4111 1111 1111 1111 exp 12/27", "card [CARD] exp 12/27"),
    ("CARD", "4111-1111-1111-1111", "[CARD]"),
    ("CARD", "5555555555554444", "[CARD]"),
    ("CARD", "amex 3782 822463 10005", "amex [CARD]"),
    ("CARD", "mastercard 2223000048400011", "mastercard [CARD]"),
    ("CARD", "card 4111.1111.1111.1111 exp 12/27", "card [CARD] exp 12/27"),
    ("CARD", "amex 3782.822463.10005", "amex [CARD]"),
    ("IP", "my server is 203.0.113.42", "my server is [IP]"),
    ("IP", "ssh to 192.168.1.20:22", "ssh to [IP]:22"),
    ("IP", "8.8.8.8 resolves", "[IP] resolves"),
    ("IP", "v6 2001:db8:85a3::8a2e:370:7334 here", "v6 [IP] here"),
    ("IP", "fe80:0:0:0:202:b3ff:fe1e:8329", "[IP]"),
    ("IBAN", "IBAN DE89 3704 0044 0532 0130 00 please", "IBAN [IBAN] please"),
    ("IBAN", "GB82WEST12345698765432", "[IBAN]"),
    ("IBAN", "FR14 2004 1010 0505 0001 3M02 606", "[IBAN]"),
    ("NATIONAL_ID", "SSN 536-22-1489", "SSN [NATIONAL_ID]"),
    ("NATIONAL_ID", "NI number AB123456C", "NI number [NATIONAL_ID]"),
    ("NATIONAL_ID", "NI number AB 12 34 56 C", "NI number [NATIONAL_ID]"),
    ("NATIONAL_ID", "SIN 130-692-544", "SIN [NATIONAL_ID]"),
    ("PERSON", "Hi, I'm Maria Garcia. Can you explain closures?", "Hi, I'm [PERSON]. Can you explain closures?"),
    ("PERSON", "I am Priya Patel and I am stuck", "I am [PERSON] and I am stuck"),
    ("LOCATION", "I work in Berlin, why is my fetch() failing?", "I work in [LOCATION], why is my fetch() failing?"),
    ("LOCATION", "send it to 42 Elm Street please", "send it to [LOCATION] please"),
    ("LOCATION", "my flat is at 221B Baker St", "my flat is at [LOCATION]"),
]


@pytest.mark.parametrize(("kind", "text", "expected"), POSITIVES, ids=[p[1] for p in POSITIVES])
def test_redacts_personal_data(kind: str, text: str, expected: str) -> None:
    result = redact(text)
    assert result.text == expected
    assert set(result.counts) == {kind}


LECTURE_CONTENT = [
    # CSS
    "color: #fff; background: #1e1e1e;",
    "grid-template-columns: 1fr 1fr 100px;",
    "margin: 0 auto; z-index: 9999; width: calc(100% - 24px);",
    "rgba(0, 0, 0, 0.5)",
    "@media (max-width: 768px) { .card { padding: 16px } }",
    "background-image: url(logo@2x.png);",
    # code
    "await Promise.all([fetchUser(), fetchPosts()])",
    "useEffect(() => {}, [])",
    "std::vector<int> v; A::B::c();",
    "evens = xs[::2]; odds = xs[1::2]",
    "@Component({selector: 'app-root'})",
    "npm install @types/node react@18.2.0",
    "git clone git@github.com:tutorstream/demo.git",
    "const id = '123e4567-e89b-12d3-a456-426614174000';",
    "commit 4f2a9c1 fixed it; sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "Date.now() returned 1700000000000 and later 1712345678901",
    "x = 3.14159265358979; y = 0.4111111111111111",
    "for i in range(1000000): total += i * 2",
    "O(n log n) beats O(n^2) for n > 1000",
    "HTTP 404, port 8080, localhost:3000",
    # versions, times, dates, numbers
    "upgrade from 1.2.3 to v2.10.4 (node 18.17.1, build 10.0.19041.1)",
    "at 12:30 we break; resume at 13:45",
    "see 00:01:05.500 and 01:02:03",
    "00:00:01,000 --> 00:00:04,500",
    "in 1984, 1999-2024, and the years 2019 2020 2021 2022",
    "released 2024-01-15, patched 15.01.2024",
    "population 1 234 567 890 and 1,000,000 users; rows 120 240 360 and 046 454 286",
    "ISBN 978-3-16-148410-0",
    "+1.5 points, -3 dB, +100px",
    "the ratio 16:9 and 4:3",
    # addresses that identify nobody
    "bind to 127.0.0.1 or 0.0.0.0; netmask 255.255.255.0; ::1 is loopback",
    "MAC address 00:1A:2B:3C:4D:5E",
    "email addresses look like user@localhost in this demo",
]


@pytest.mark.parametrize("text", LECTURE_CONTENT)
def test_leaves_lecture_content_alone(text: str) -> None:
    result = redact(text)
    assert result.text == text
    assert result.counts == {}


@pytest.mark.parametrize("separator", ["", " ", "-", "."])
@pytest.mark.parametrize("number", ["4111111111111111", "5555555555554444", "6011111111111117", "2223000048400011"])
def test_cards_are_redacted_whatever_the_separator(number: str, separator: str) -> None:
    written = separator.join(number[i : i + 4] for i in range(0, 16, 4))
    result = redact(f"charged to {written} yesterday")
    assert result.text == "charged to [CARD] yesterday"
    assert result.counts == {"CARD": 1}


def test_names_and_home_addresses_are_redacted() -> None:
    result = redact("I'm Sarah Johnson from 42 Elm Street")
    assert result.text == "I'm [PERSON] from [LOCATION]"
    assert result.counts == {"PERSON": 1, "LOCATION": 1}

    result = redact("My name is Tom and I live at 221B Baker Street, London")
    assert result.text == "My name is [PERSON] and I live at [LOCATION], [LOCATION]"
    assert result.counts == {"PERSON": 1, "LOCATION": 2}


TECHNICAL_QUESTIONS = [
    "How does React useEffect differ from Promise.all in Python?",
    "Why does Django's ORM beat SQLAlchemy?",
    "Explain Dijkstra's algorithm and how it differs from Bellman-Ford.",
    "Explain Huffman coding.",
    "What does useState return in React Hooks?",
    "What is the CAP theorem in distributed systems like Cassandra and MongoDB?",
    "How does Git rebase differ from merge?",
    "In Java, what is a HashMap and how does hashing work?",
    "When should I use Redux instead of React Context?",
    "Why does Kubernetes restart my Docker container?",
    "Can you explain async/await with fetch() in Node?",
    "Why does Chrome DevTools show a CORS error when calling localhost:8080?",
    "Is TypeScript's any type the same as unknown?",
    "How do I use pandas groupby with numpy arrays?",
    "Explain the Liskov substitution principle with an example.",
    "What does Array.prototype.map return, and why is Date.now() a number?",
    "Why does justify-content: space-between not work in my Flexbox layout?",
    "What did the lecturer mean by the box model at 03:15?",
    "color: #fff; evens = xs[::2]; see 01:02:03",
]


@pytest.mark.parametrize("question", TECHNICAL_QUESTIONS)
def test_technical_questions_come_through_unchanged(question: str) -> None:
    result = redact(question)
    assert result.text == question
    assert result.counts == {}


def test_names_can_be_left_to_the_text() -> None:
    text = "Ada Lovelace wrote the first program in London; mail ada@example.com"
    assert redact(text).text == "[PERSON] wrote the first program in [LOCATION]; mail [EMAIL]"
    assert redact(text, names=False).text == "Ada Lovelace wrote the first program in London; mail [EMAIL]"


def test_redaction_is_idempotent() -> None:
    once = redact("I'm Sarah Johnson from 42 Elm Street, jane@example.com, card 4111.1111.1111.1111").text
    assert once == "I'm [PERSON] from [LOCATION], [EMAIL], card [CARD]"
    assert redact(once).text == once
    assert redact(once).counts == {}


def test_concurrent_first_use_gives_the_same_answers() -> None:
    texts = [f"I'm Sarah Johnson, card 4111-1111-1111-1111, try {n}" for n in range(16)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(redact, texts))
    assert [result.text for result in results] == [f"I'm [PERSON], card [CARD], try {n}" for n in range(16)]


# The analyzer in a fresh interpreter, with an empty home (no cached suffix list) and an audit hook that fails
# on any network use: tldextract must answer from the list it ships.
_OFFLINE_PROBE = """
import socket, sys

def deny(event, args):
    if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname"):
        raise RuntimeError(f"network use: {event} {args}")

sys.addaudithook(deny)
from server.llm.pii import redact
print(redact("mail jane.doe@example.co.uk or x@foo.notasuffix from 203.0.113.42, I'm Sarah Johnson").text)
"""


def test_redaction_never_touches_the_network(tmp_path: pytest.TempPathFactory) -> None:
    environment = {
        **os.environ,
        "HOME": str(tmp_path),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "TLDEXTRACT_CACHE": str(tmp_path / "tldextract"),
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
    }
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", _OFFLINE_PROBE], env=environment, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "mail [EMAIL] or x@foo.notasuffix from [IP], I'm [PERSON]"
    assert not (tmp_path / "tldextract").exists()
    assert time.monotonic() - started < 60


def test_counts_each_kind() -> None:
    result = redact("Reach a@example.com or b@example.org, call 415-555-2671, card 4111111111111111, ip 8.8.4.4.")
    assert result.counts == {"EMAIL": 2, "PHONE": 1, "CARD": 1, "IP": 1}
    assert result.total == 5
    assert result.text == "Reach [EMAIL] or [EMAIL], call [PHONE], card [CARD], ip [IP]."


@pytest.mark.parametrize(
    "number",
    ["4111 1111 1111 1112", "4111111111111112", "5555-5555-5555-4445", "1234 5678 9012 3456"],
)
def test_card_like_numbers_failing_luhn_are_kept(number: str) -> None:
    assert redact(number).text == number


@pytest.mark.parametrize("candidate", ["DE89 3704 0044 0532 0130 01", "GB82WEST12345698765433", "DE00 1234"])
def test_iban_like_strings_failing_mod97_are_kept(candidate: str) -> None:
    assert redact(candidate).counts.get("IBAN") is None


def test_invalid_ssn_ranges_are_kept() -> None:
    for ssn in ("000-12-3456", "666-12-3456", "123-00-4567", "123-45-0000", "078-05-1120", "123-45-6789"):
        assert redact(ssn).counts.get("NATIONAL_ID") is None, ssn


def test_redact_messages_sums_counts_and_keeps_roles() -> None:
    messages = [
        ChatMessage("system", "Transcript: at 00:01:05 the lecturer opens 127.0.0.1:8000."),
        ChatMessage("user", "I'm jane@example.com, call +44 20 7946 0958"),
        ChatMessage("assistant", "Noted."),
        ChatMessage("user", "backup: joe@example.net"),
    ]
    result = redact_messages(messages)

    assert result.counts == {"EMAIL": 2, "PHONE": 1}
    assert result.total == 3
    assert [m.role for m in result.messages] == ["system", "user", "assistant", "user"]
    assert result.messages[0] is messages[0]
    assert result.messages[1].content == "I'm [EMAIL], call [PHONE]"
    assert result.messages[3].content == "backup: [EMAIL]"


def test_redact_messages_looks_for_names_only_in_what_students_write() -> None:
    messages = [
        ChatMessage("system", "Transcript: Ada Lovelace worked in London. Contact: prof@example.edu"),
        ChatMessage("assistant", "Grace Hopper coined the term in Virginia."),
        ChatMessage("user", "I'm Sarah Johnson from 42 Elm Street, who was Ada Lovelace?"),
    ]
    result = redact_messages(messages)

    assert result.messages[0].content == "Transcript: Ada Lovelace worked in London. Contact: [EMAIL]"
    assert result.messages[1] is messages[1]
    assert result.messages[2].content == "I'm [PERSON] from [LOCATION], who was [PERSON]?"
    assert result.counts == {"EMAIL": 1, "PERSON": 2, "LOCATION": 1}


def test_redact_messages_can_be_limited_to_roles() -> None:
    messages = [ChatMessage("system", "contact: prof@example.edu"), ChatMessage("user", "me: s@example.edu")]
    result = redact_messages(messages, roles={"user"})

    assert result.messages[0].content == "contact: prof@example.edu"
    assert result.messages[1].content == "me: [EMAIL]"
    assert result.counts == {"EMAIL": 1}


# --- generated cases ---------------------------------------------------------------------------------------

timestamps = st.builds(
    "{:02d}:{:02d}:{:02d}{}".format,
    st.integers(0, 99),
    st.integers(0, 59),
    st.integers(0, 59),
    st.sampled_from(["", ".500", ",000", ".042"]),
)
clock_times = st.builds("{:d}:{:02d}".format, st.integers(0, 23), st.integers(0, 59))
versions = st.builds(
    "{}{}.{}.{}".format,
    st.sampled_from(["", "v"]),
    st.integers(0, 99),
    st.integers(0, 99),
    st.integers(0, 999),
)
years = st.lists(st.integers(1900, 2099), min_size=1, max_size=6).map(lambda ys: " ".join(map(str, ys)))
css_values = st.builds(
    "{}{}".format, st.integers(0, 4000), st.sampled_from(["px", "fr", "em", "rem", "%", "vh", "ms", "s"])
)
hex_colors = st.text("0123456789abcdef", min_size=3, max_size=6).map(lambda h: "#" + h)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.lists(st.one_of(timestamps, clock_times, versions, years, css_values, hex_colors), max_size=8))
def test_generated_lecture_tokens_survive(tokens: list[str]) -> None:
    text = " ".join(tokens)
    assert redact(text).text == text


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def luhn_complete(prefix: str) -> str:
    for check in "0123456789":
        if luhn_valid(prefix + check):
            return prefix + check
    raise AssertionError("unreachable: one check digit always completes a Luhn number")


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(
    st.sampled_from(["4", "51", "55", "37", "6011", "2221"]),
    st.integers(13, 19),
    st.randoms(use_true_random=False),
    st.sampled_from(["", " ", "-", "."]),
)
def test_generated_valid_cards_are_redacted(prefix: str, length: int, rng: Random, separator: str) -> None:
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix) - 1))
    number = luhn_complete(body)
    if separator and length == 16:
        number = separator.join(number[i : i + 4] for i in range(0, 16, 4))
    text = f"my card is {number} thanks"
    assert redact(text).text == "my card is [CARD] thanks"

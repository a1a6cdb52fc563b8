"""Test audio whose words are known: espeak-ng speech, silence, and the word error rate of a transcript."""

from __future__ import annotations

import re
import subprocess
import wave
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

ESPEAK_RATE = 22_050
# Words per minute: a little slower than espeak's default, like a lecturer.
ESPEAK_SPEED = 150

Samples = npt.NDArray[np.int16]


def speak(text: str, *, speed: int = ESPEAK_SPEED) -> Samples:
    """espeak-ng (US English) speaking `text`, as 22.05 kHz mono 16-bit samples."""
    result = subprocess.run(
        ["espeak-ng", "-v", "en-us", "-s", str(speed), "--stdout", text],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return _samples(result.stdout)


def _samples(wav_bytes: bytes) -> Samples:
    # espeak-ng writes a streaming WAV header (sizes unset), so skip to the data chunk by hand.
    index = wav_bytes.index(b"data") + 8
    return np.frombuffer(wav_bytes[index : len(wav_bytes) - (len(wav_bytes) - index) % 2], dtype="<i2").copy()


def silence(seconds: float) -> Samples:
    return np.zeros(round(seconds * ESPEAK_RATE), dtype=np.int16)


def write_wav(path: Path, parts: Sequence[Samples]) -> float:
    """Write the parts one after another as a mono 22.05 kHz WAV; returns its duration in seconds."""
    samples = np.concatenate(list(parts)) if parts else silence(0)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(ESPEAK_RATE)
        out.writeframes(samples.astype("<i2").tobytes())
    return len(samples) / ESPEAK_RATE


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower().replace("-", " "))


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words, by edit distance over words."""
    ref, hyp = words(reference), words(hypothesis)
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, start=1):
        current = [i] + [0] * len(hyp)
        for j, hyp_word in enumerate(hyp, start=1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word))
        previous = current
    return previous[-1] / max(1, len(ref))

"""Local speech to text on this machine: real-time factor and memory for a long lecture.

    python -m bench.bench_asr [--minutes 5] [--threads 2] [--window 30]
    python -m bench.bench_asr --minutes 10      # the 10-minute lecture: about 15 minutes on 2 cores

The default lecture is 5 minutes, so that `make bench` stays short (about 7 minutes on 2 cores at ~1.5x real
time) while still showing the windowing: the windowed path's peak stays near one window's working set
(~150 MB here) whatever the length, while the whole-file path's grows with the audio (~170 MB at 3 minutes,
~290 MB at 5). The 10-minute version makes the gap plainer.

Generates a spoken lecture with espeak-ng (a paragraph repeated with pauses, `--minutes` long), then
transcribes it twice with the same loaded Whisper base model, side by side:

- windowed: the server's path (server.asr.pipeline): PyAV decodes 16 kHz mono windows cut at quiet moments,
  each recognised on its own, so memory holds one window;
- whole file: faster-whisper given the whole decoded file at once (its own 30 s seeking).

Reports audio seconds per wall second (the real-time factor; higher is faster), the process's peak RSS
growth over the loaded, warmed-up model while each runs (sampled every 50 ms), and the word error rate of each
transcript against the spoken text. Published (bench.report): those figures for context, and whether memory
is bounded (the windowed peak below the whole-file peak).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from faster_whisper.audio import decode_audio

from bench.report import Line, context, publish
from server.asr.local_whisper import LocalWhisper, _load_model
from server.asr.model_assembly import resolve_model
from server.asr.pipeline import transcribe_media
from tests.asr.speech import ESPEAK_RATE, silence, speak, word_error_rate, write_wav

LECTURE = (
    "In this lesson we look at how a web browser turns a document into pixels. The browser downloads the "
    "markup and parses it into a tree of elements. It then reads every style sheet and computes the style "
    "of each element. Layout works out the size and position of every box, and painting fills in the "
    "pixels. When a script changes the page, the browser repeats only the steps that are affected."
)


def _rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class PeakRss:
    """Samples the process's resident memory in a thread; `peak` is the highest value seen."""

    def __init__(self, interval: float = 0.05) -> None:
        self._interval = interval
        self._stop = threading.Event()
        self.peak = _rss_bytes()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, _rss_bytes())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())


def make_lecture(path: Path, minutes: float) -> tuple[float, str]:
    """A WAV of LECTURE repeated with 1.5 s pauses up to `minutes`; returns (seconds, spoken text)."""
    spoken = speak(LECTURE)
    pause = silence(1.5)
    parts, texts, length = [], [], 0
    while length + len(spoken) <= minutes * 60 * ESPEAK_RATE:
        parts += [spoken, pause]
        texts.append(LECTURE)
        length += len(spoken) + len(pause)
    return write_wav(path, parts), " ".join(texts)


def measure(label: str, run: Callable[[], Any], audio_seconds: float, reference: str) -> dict[str, Any]:
    gc.collect()
    baseline = _rss_bytes()
    started = time.perf_counter()
    with PeakRss() as memory:
        text = run()
    wall = time.perf_counter() - started
    result = {
        "label": label,
        "wall": wall,
        "rtf": audio_seconds / wall,
        "peak_growth_mb": (memory.peak - baseline) / 2**20,
        "wer": word_error_rate(reference, text),
    }
    print(
        f"{label:>10}: {wall:7.1f} s wall, {result['rtf']:5.2f}x real time, "
        f"peak RSS +{result['peak_growth_mb']:6.1f} MB over the loaded model, WER {result['wer']:.3f}",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0, help="lecture length (10 for the long version)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--window", type=float, default=30.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-asr-") as scratch:
        root = Path(scratch)
        lecture = root / "lecture.wav"
        seconds, reference = make_lecture(lecture, args.minutes)
        print(f"lecture: {seconds:.0f} s of espeak-ng speech, {lecture.stat().st_size / 2**20:.1f} MB WAV")

        started = time.perf_counter()
        directory, model_id = resolve_model(None, root)
        assembled = time.perf_counter() - started
        whisper = LocalWhisper(model_dir=directory, data_dir=root, cpu_threads=args.threads)
        started = time.perf_counter()
        asyncio.run(whisper.prepare())
        print(f"model {model_id}: assembled in {assembled:.1f} s, loaded in {time.perf_counter() - started:.1f} s")
        model = _load_model(str(directory), "int8", args.threads)

        def windowed(path: Path) -> str:
            result = asyncio.run(
                transcribe_media(path, whisper, language=None, window_seconds=args.window, max_seconds=4 * 3600)
            )
            return " ".join(segment.text for segment in result.segments)

        def whole_file(path: Path) -> str:
            audio = decode_audio(str(path))
            segments, _ = model.transcribe(audio, beam_size=1, vad_filter=True, word_timestamps=True)
            return " ".join(segment.text.strip() for segment in segments)

        # One short pass through each path first, so one-time allocations (the VAD model, the runtime's buffers)
        # count in neither peak, whichever path runs first.
        warmup = root / "warmup.wav"
        make_lecture(warmup, 0.5)
        windowed(warmup)
        whole_file(warmup)
        results = [
            measure("windowed", partial(windowed, lecture), seconds, reference),
            measure("whole file", partial(whole_file, lecture), seconds, reference),
        ]
        ratio = results[0]["rtf"] / results[1]["rtf"]
        print(f"windowed / whole-file speed: {ratio:.2f}; threads {args.threads}, window {args.window:.0f} s")
    publish(published(results, args.minutes))


def published(results: list[dict[str, Any]], minutes: float) -> list[Line]:
    windowed, whole = results
    whole_file = "whole file in one faster-whisper call, same run"
    lecture = f"{minutes:g}-minute lecture"
    memory = windowed["peak_growth_mb"] / whole["peak_growth_mb"]
    return [
        context("asr", f"{lecture}, real-time factor, windowed", windowed["rtf"], "x"),
        context("asr", f"{lecture}, real-time factor, whole file", whole["rtf"], "x"),
        context("asr", "peak RSS over the loaded model, windowed", windowed["peak_growth_mb"], "MB"),
        context("asr", "peak RSS over the loaded model, whole file", whole["peak_growth_mb"], "MB"),
        Line("asr", "memory bounded: windowed peak vs whole-file peak", memory, "x", "< 1x", memory < 1, whole_file),
        context("asr", "word error rate, windowed", windowed["wer"], ""),
        context("asr", "word error rate, whole file", whole["wer"], ""),
    ]


if __name__ == "__main__":
    main()

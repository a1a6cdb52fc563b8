"""A parsed transcript on its way from the ingest call to its job: the parse itself, handed over in memory
when the job runs in the same process, and what both sides derive from it (the cues as stored, the content
hash that tells an unchanged transcript)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any

from server.transcripts.parsing import ParsedTranscript


def cue_records(parsed: ParsedTranscript) -> list[dict[str, Any]]:
    """The cues as stored; `confidence` only where there is one (speech-to-text cues)."""
    records: list[dict[str, Any]] = []
    for cue in parsed.cues:
        record: dict[str, Any] = {"start": cue.start, "end": cue.end, "text": cue.text, "speaker": cue.speaker or ""}
        if cue.confidence is not None:
            record["confidence"] = cue.confidence
        records.append(record)
    return records


def content_hash(parsed: ParsedTranscript) -> str:
    """SHA-256 of the normalised transcript: the cues' timings, text and speakers (format-independent, so
    the same captions as WebVTT or SRT hash alike)."""
    payload = json.dumps(
        [[round(cue.start, 3), round(cue.end, 3), cue.text, cue.speaker or ""] for cue in parsed.cues],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()


class ParsedHandoff:
    """Transcripts parsed while validating an ingest call, kept for a worker of the same process so the job
    does not parse the content a second time.

    Bounded by the length of the content they came from (oldest dropped first); a job that finds nothing here, e.g.
    in a separate worker process or after a restart, parses its content itself. Entries are keyed by the
    job id, which is unique and whose content never changes, so an entry is always the job's own transcript.
    """

    def __init__(self, max_content_chars: int) -> None:
        self._max_chars = max_content_chars
        self._entries: OrderedDict[str, tuple[ParsedTranscript, int]] = OrderedDict()
        self._chars = 0
        # Written by the event loop, read by jobs of any worker loop of the process.
        self._lock = threading.Lock()

    def put(self, job_id: str, parsed: ParsedTranscript, content_chars: int) -> None:
        if content_chars > self._max_chars:
            return
        with self._lock:
            self._entries[job_id] = (parsed, content_chars)
            self._chars += content_chars
            while self._chars > self._max_chars:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._chars -= dropped

    def take(self, job_id: str) -> ParsedTranscript | None:
        with self._lock:
            entry = self._entries.pop(job_id, None)
            if entry is None:
                return None
            self._chars -= entry[1]
            return entry[0]


# Enough for a burst of large uploads waiting in the queue; beyond it jobs parse for themselves.
PARSED_HANDOFF = ParsedHandoff(max_content_chars=64 * 1024 * 1024)

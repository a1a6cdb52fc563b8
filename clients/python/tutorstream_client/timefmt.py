"""Video positions as people write them: `83`, `1:23`, `1:02:03`, ranges `1:00-2:30`."""

from __future__ import annotations


def clock(seconds: float) -> str:
    """83.4 -> "01:23"; an hour or more -> "1:02:03"."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def clock_range(start: float, end: float) -> str:
    return f"{clock(start)}–{clock(end)}"


def parse_clock(text: str) -> float:
    """Seconds from `SS`, `MM:SS` or `HH:MM:SS` (fractions allowed in the last part)."""
    parts = text.strip().split(":")
    if not 1 <= len(parts) <= 3 or any(not part for part in parts):
        raise ValueError(f"not a time: {text!r} (use 83, 1:23 or 1:02:03)")
    try:
        numbers = [float(part) for part in parts]
    except ValueError as exc:
        raise ValueError(f"not a time: {text!r} (use 83, 1:23 or 1:02:03)") from exc
    if any(number < 0 for number in numbers) or any(number >= 60 for number in numbers[1:]):
        raise ValueError(f"not a time: {text!r}")
    seconds = 0.0
    for number in numbers:
        seconds = seconds * 60 + number
    return seconds


def parse_range(text: str) -> tuple[float, float]:
    """`1:00-2:30` -> (60.0, 150.0); the end must come after the start."""
    start_text, separator, end_text = text.partition("-")
    if not separator:
        raise ValueError(f"not a range: {text!r} (use START-END, e.g. 1:00-2:30)")
    start, end = parse_clock(start_text), parse_clock(end_text)
    if end <= start:
        raise ValueError(f"range {text!r} ends before it starts")
    return start, end

"""The soak's memory and task series as a small standalone SVG (no plotting library needed to read it): RSS
under load over time, the warm-up shaded, the first and last flatness windows marked, and the ±tolerance band
around the first window's median that the last window's median must stay in."""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import escape

from soak.monitor import Flatness, Sample

WIDTH, HEIGHT = 760, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 28, 40


def rss_svg(samples: Sequence[Sample], rss: Flatness, *, warmup: float, window: float, title: str) -> str:
    if not samples:
        return _svg([_text(WIDTH / 2, HEIGHT / 2, "no samples", anchor="middle")])
    times = [sample.at for sample in samples]
    values = [sample.rss_bytes / 2**20 for sample in samples]
    end = max(times)
    band = (rss.first * (1 - rss.tolerance), rss.first * (1 + rss.tolerance))
    low = min(min(values), band[0]) * 0.97
    high = max(max(values), band[1]) * 1.03

    def x(seconds: float) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * seconds / end if end > 0 else LEFT

    def y(mib: float) -> float:
        return TOP + (HEIGHT - TOP - BOTTOM) * (high - mib) / (high - low)

    parts = [
        f'<rect x="{x(0):.1f}" y="{TOP}" width="{x(warmup) - x(0):.1f}" height="{HEIGHT - TOP - BOTTOM}" '
        'fill="#eeeeee"/>',
        _text(x(warmup / 2), TOP + 14, "warm-up", anchor="middle"),
        f'<rect x="{x(warmup):.1f}" y="{y(band[1]):.1f}" width="{x(end) - x(warmup):.1f}" '
        f'height="{y(band[0]) - y(band[1]):.1f}" fill="#d9f0d9"/>',
    ]
    for start, label in ((warmup, "first window"), (end - window, "last window")):
        parts.append(
            f'<rect x="{x(start):.1f}" y="{TOP}" width="{x(start + window) - x(start):.1f}" '
            f'height="{HEIGHT - TOP - BOTTOM}" fill="none" stroke="#7a7a7a" stroke-dasharray="4 3"/>'
        )
        parts.append(_text(x(start + window / 2), HEIGHT - BOTTOM - 6, label, anchor="middle"))
    points = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in zip(times, values, strict=True))
    parts.append(f'<polyline points="{points}" fill="none" stroke="#1f5fbf" stroke-width="1.5"/>')
    for mib in (low, (low + high) / 2, high):
        parts.append(_text(LEFT - 6, y(mib) + 4, f"{mib:.0f}", anchor="end"))
    for seconds in (0.0, end / 2, end):
        parts.append(_text(x(seconds), HEIGHT - BOTTOM + 16, f"{seconds / 60:.0f} min", anchor="middle"))
    parts += [
        f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" y2="{HEIGHT - BOTTOM}" stroke="#333"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{HEIGHT - BOTTOM}" stroke="#333"/>',
        _text(LEFT, 16, title),
        _text(14, TOP + (HEIGHT - TOP - BOTTOM) / 2, "RSS (MiB)", anchor="middle", rotate=True),
        _text(
            WIDTH - RIGHT,
            16,
            f"first {rss.first:.0f} → last {rss.last:.0f} MiB (band ±{rss.tolerance:.0%})",
            anchor="end",
        ),
    ]
    return _svg(parts)


def _text(x: float, y: float, text: str, *, anchor: str = "start", rotate: bool = False) -> str:
    turn = f' transform="rotate(-90 {x:.1f} {y:.1f})"' if rotate else ""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-family="sans-serif" font-size="11" text-anchor="{anchor}"{turn}>'
        f"{escape(text)}</text>"
    )


def _svg(parts: list[str]) -> str:
    body = "\n  ".join(parts)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}">\n  {body}\n</svg>\n'
    )

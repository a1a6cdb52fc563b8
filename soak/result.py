"""The outcome of a soak run: what happened, the pass criteria, and the printed table."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from soak.ledger import CLIENT_CANCELLED
from soak.monitor import Flatness, Sample
from soak.verify import Tally

FAILING_CODES = ("INTERNAL", "UNKNOWN")
# Of the calls the client did not cancel itself, at least this share of every RPC ends OK (the faults — a Redis
# restart, upstream 429s and dropped streams — may fail some, not most).
MIN_OK_SHARE = 0.9
# Calls that must end OK after Redis came back: the server rejoined it rather than limping on.
MIN_OK_AFTER_REDIS_RESTART = 10


@dataclass(frozen=True, slots=True)
class Criterion:
    name: str
    passed: bool
    detail: str


@dataclass
class SoakResult:
    seconds_planned: float
    seconds_run: float
    warmup_seconds: float
    window_seconds: float
    statuses: Counter[tuple[str, str]]
    tallies: list[Tally]
    rss: Flatness
    tasks: Flatness
    faults: dict[str, float]
    notes: Counter[str]
    ok_after_redis_restart: int
    health_at_end: str
    exit_code: int | None
    drained: bool
    log_levels: Counter[str] = field(default_factory=Counter)
    log_errors: list[str] = field(default_factory=list)
    # The memory and task samples under load, and when the steady phase (after the warm-up) began.
    samples: list[Sample] = field(default_factory=list)
    steady_at: float = 0.0

    def failing_statuses(self) -> int:
        return sum(count for (_, code), count in self.statuses.items() if code in FAILING_CODES)

    @property
    def criteria(self) -> list[Criterion]:
        lost = [f"{t.kind}: {t.acknowledged - t.stored} missing" for t in self.tallies if not t.passed]
        failing = self.failing_statuses()
        faults_ok = (
            self.faults.get("redis restarts", 0) >= 1
            and self.faults.get("chat stream 429s", 0) > 0
            and self.faults.get("chat streams dropped", 0) > 0
            and self.statuses.get(("StreamChat", CLIENT_CANCELLED), 0) > 0
        )
        shares = self.ok_shares()
        short = [f"{rpc} {share:.0%}" for rpc, share in shares.items() if share < MIN_OK_SHARE]
        worst = min(shares.values(), default=0.0)
        return [
            Criterion("no INTERNAL or UNKNOWN status", failing == 0, f"{failing} calls"),
            Criterion(
                f"every RPC >= {MIN_OK_SHARE:.0%} OK",
                bool(shares) and not short,
                "; ".join(short) or f"lowest {worst:.0%} over {len(shares)} RPCs (client cancels excluded)",
            ),
            Criterion(
                "calls succeed after Redis is back",
                self.ok_after_redis_restart >= MIN_OK_AFTER_REDIS_RESTART,
                f"{self.ok_after_redis_restart} OK (at least {MIN_OK_AFTER_REDIS_RESTART})",
            ),
            Criterion(
                "every acknowledged write stored",
                not lost and all(t.acknowledged > 0 for t in self.tallies if "cancelled" not in t.kind),
                "; ".join(lost) or f"{sum(t.acknowledged for t in self.tallies)} writes checked",
            ),
            Criterion(self.rss.name + " flat", self.rss.passed, _flat_detail(self.rss)),
            Criterion(self.tasks.name + " flat", self.tasks.passed, _flat_detail(self.tasks)),
            Criterion("faults injected", faults_ok, "Redis restart, upstream 429s and drops, client cancels"),
            Criterion("load drained after the run", self.drained, "every client finished its last call"),
            Criterion("healthy at the end", self.health_at_end == "SERVING", self.health_at_end),
            Criterion("clean exit on SIGTERM", self.exit_code == 0, f"exit code {self.exit_code}"),
        ]

    def ok_shares(self) -> dict[str, float]:
        """Per RPC, the share of calls ending OK among those the client did not cancel."""
        totals: Counter[str] = Counter()
        oks: Counter[str] = Counter()
        for (rpc, code), count in self.statuses.items():
            if code == CLIENT_CANCELLED:
                continue
            totals[rpc] += count
            if code == "OK":
                oks[rpc] += count
        return {rpc: oks[rpc] / total for rpc, total in sorted(totals.items()) if total}

    @property
    def passed(self) -> bool:
        return all(criterion.passed for criterion in self.criteria)

    def table(self) -> str:
        lines = [
            f"soak: {self.seconds_run:.0f} s of load (planned {self.seconds_planned:.0f} s), warm-up "
            f"{self.warmup_seconds:.0f} s, flatness windows {self.window_seconds:.0f} s",
            "",
            "RPCs by method and final status",
        ]
        by_rpc: dict[str, Counter[str]] = {}
        for (rpc, code), count in sorted(self.statuses.items()):
            by_rpc.setdefault(rpc, Counter())[code] = count
        for rpc, codes in by_rpc.items():
            shown = ", ".join(f"{code} {count}" for code, count in codes.most_common())
            lines.append(f"  {rpc:<22} {sum(codes.values()):>6}   {shown}")
        lines += ["", "acknowledged vs stored"]
        for tally in self.tallies:
            missing = f"   missing e.g. {', '.join(tally.missing)}" if tally.missing else ""
            lines.append(f"  {tally.kind:<60} {tally.acknowledged:>6} {tally.stored:>6}{missing}")
        lines += ["", "faults and outcomes"]
        for name, value in sorted(self.faults.items()):
            lines.append(f"  {name:<60} {value:>8g}")
        for name, count in sorted(self.notes.items()):
            lines.append(f"  {name:<60} {count:>8}")
        levels = ", ".join(f"{level} {count}" for level, count in sorted(self.log_levels.items())) or "none"
        lines.append(f"  server log lines at WARNING and above: {levels}")
        lines += [f"    {line}" for line in self.log_errors]
        lines += [
            "",
            "after warm-up (RSS: window medians under load; tasks: at rest, with min/max under load)",
            "  series                        first        last     drift     min     max",
        ]
        for series in (self.rss, self.tasks):
            lines.append(
                f"  {series.name:<24} {series.first:>10.1f} {series.last:>11.1f} {series.drift:>+9.1%}"
                f" {series.low:>7.1f} {series.high:>7.1f}   ({series.samples} samples)"
            )
        lines += ["", "criteria"]
        for criterion in self.criteria:
            lines.append(f"  {'PASS' if criterion.passed else 'FAIL'}  {criterion.name:<34} {criterion.detail}")
        lines += ["", "soak " + ("PASSED" if self.passed else "FAILED")]
        return "\n".join(lines)


def _flat_detail(series: Flatness) -> str:
    if not series.samples:
        return "no samples"
    return f"{series.first:.1f} -> {series.last:.1f} ({series.drift:+.1%}, allowed ±{series.tolerance:.0%})"

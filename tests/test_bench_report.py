"""The benchmark report: lines judged against targets, one table, and the figures kept across partial runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import __main__ as runner
from bench.report import RESULTS_FILE_ENV, at_least, at_most, context, load, percentile, publish, render
from bench.report import change as runner_change


def test_targets_are_judged_on_the_value() -> None:
    assert at_most("chat", "added TTFT p50", 0.8, "ms", 1).met is True
    assert at_most("chat", "added TTFT p99", 5.2, "ms", 5).met is False
    assert at_least("chat", "relay rate", 0.989, "x", 0.99).met is False
    assert at_least("search", "recall@10", 0.95, "", 0.95).met is True
    assert context("edge", "unary p50 ratio", 3.6, "x").met is None


def test_targets_and_values_read_as_written() -> None:
    line = at_least("chat", "relay rate vs direct", 1.0004, "x", 0.99, baseline="OpenAI SDK, same upstream")
    assert (line.shown_value(), line.target, line.verdict()) == ("1.000x", ">= 0.99x", "met")
    slow = at_most("search", "per-video p99", 10.6, "ms", 10)
    assert (slow.shown_value(), slow.target, slow.verdict()) == ("10.60 ms", "<= 10 ms", "NOT MET")
    assert context("unary", "tutorstream RPS", 2345.6, "rps").shown_value() == "2,346 rps"


def test_percentile_is_nearest_rank_and_median_at_fifty() -> None:
    samples = [float(value) for value in range(1, 101)]
    assert percentile(samples, 50) == 50.5
    assert percentile(samples, 99) == 99.0
    with pytest.raises(ValueError):
        percentile([], 99)


def test_render_aligns_one_row_per_line() -> None:
    table = render(
        [at_most("limits", "Redis check p50", 0.21, "ms", 0.3), context("limits", "in-process", 0.004, "ms")]
    )
    rows = table.splitlines()
    assert len(rows) == 4
    assert len({len(row) for row in rows}) == 1
    assert "| limits | Redis check p50 | 0.210 ms" in rows[2]
    assert "NOT MET" not in table


def test_publish_appends_lines_for_the_runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = tmp_path / "figures.jsonl"
    monkeypatch.setenv(RESULTS_FILE_ENV, str(sink))
    first = [at_most("a", "m1", 1.0, "ms", 2)]
    second = [context("b", "m2", 3.0, "x")]
    publish(first)
    publish(second)
    assert load(sink) == first + second
    assert json.loads(sink.read_text().splitlines()[0])["met"] is True


def test_a_figure_that_moved_away_from_its_target_is_flagged() -> None:
    before = at_most("chat", "TTFT p50", 10.0, "ms", 50)
    assert runner_change(at_most("chat", "TTFT p50", 12.5, "ms", 50), before) == "was 10.00 ms, WORSE by 25%"
    assert runner_change(at_most("chat", "TTFT p50", 11.0, "ms", 50), before) == "was 10.00 ms"
    assert runner_change(at_most("chat", "TTFT p50", 5.0, "ms", 50), before) == "was 10.00 ms"
    rate = at_least("chat", "relay rate", 1.0, "x", 0.99)
    assert runner_change(at_least("chat", "relay rate", 0.7, "x", 0.99), rate) == "was 1.000x, WORSE by 30%"
    # Without a target a figure has no direction: only its earlier value is shown.
    assert runner_change(context("unary", "RPS", 100.0, "RPS"), context("unary", "RPS", 500.0, "RPS")) == (
        "was 500.0 RPS"
    )
    assert runner_change(context("unary", "RPS", 100.0, "RPS"), None) == ""


def test_a_run_of_some_modules_keeps_the_others_figures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    figures = tmp_path / "latest.jsonl"
    old_chat = runner.Figure("chat", "aaa", "2026-01-01 00:00 UTC", at_most("chat", "TTFT p50", 10.0, "ms", 50))
    old_tutor = runner.Figure("tutor", "aaa", "2026-01-01 00:00 UTC", context("tutor", "sentences", 6.0, ""))
    runner.save_figures([old_chat, old_tutor], figures)
    assert runner.load_figures(figures) == [old_chat, old_tutor]
    new_tutor = runner.Figure("tutor", "bbb", "2026-02-01 00:00 UTC", context("tutor", "sentences", 7.0, ""))
    merged = runner.merge(runner.load_figures(figures), [new_tutor], ["bench.bench_tutor"])
    assert merged == [old_chat, new_tutor]
    table = render([figure.line for figure in merged], [old_tutor.line])
    assert "| 7.00" in table and "was 6.00" in table
    assert table.count("was ") == 1, "a figure kept from an earlier run is not compared with itself"

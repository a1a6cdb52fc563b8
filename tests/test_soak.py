"""The short soak: a minute of mixed load while Redis restarts and the upstream fails, judged by the soak's
own pass criteria (`python -m soak` runs the long one)."""

from __future__ import annotations

from pathlib import Path

from soak.ledger import CLIENT_CANCELLED
from soak.run import SoakConfig, run_soak

SHORT_SOAK_SECONDS = 60.0


async def test_short_soak_meets_every_criterion(tmp_path: Path, fresh_database_url: str) -> None:
    result = await run_soak(SoakConfig(seconds=SHORT_SOAK_SECONDS), tmp_path, database_url=fresh_database_url)

    table = result.table()
    print(table)
    assert [criterion.name for criterion in result.criteria if not criterion.passed] == [], table
    assert result.failing_statuses() == 0
    assert all(tally.stored == tally.acknowledged for tally in result.tallies), table
    assert result.faults["redis restarts"] == 1
    assert result.faults["chat stream 429s"] > 0
    assert result.faults["chat streams dropped"] > 0
    assert result.statuses[("StreamChat", CLIENT_CANCELLED)] > 0
    assert result.health_at_end == "SERVING"
    assert result.exit_code == 0

"""`serve` keeps full garbage collections rare (they stall the loop with thousands of open streams)."""

from __future__ import annotations

import gc
from pathlib import Path

from server.app import tune_garbage_collector
from tests.conftest import make_settings


def test_serve_freezes_startup_objects_and_spaces_full_collections(tmp_path: Path) -> None:
    before = gc.get_threshold()
    try:
        tune_garbage_collector(make_settings(tmp_path, "postgresql://unused/unused", gc_generation2_threshold=321))
        assert gc.get_threshold() == (before[0], before[1], 321)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)

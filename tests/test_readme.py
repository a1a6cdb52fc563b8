"""docs/configuration.md stays true: its configuration table is the one generated from Settings."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_configuration_table_matches_settings() -> None:
    spec = importlib.util.spec_from_file_location("config_table", ROOT / "scripts" / "config_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    document = (ROOT / "docs" / "configuration.md").read_text()
    assert module.with_table(document) == document, "run `python scripts/config_table.py --write`"

"""Print the configuration table of docs/configuration.md from `server.config.Settings` (the single source of
truth); `--write` rewrites it there."""

from __future__ import annotations

import json
from typing import Any

from pydantic.fields import FieldInfo

from server.config import Settings

BEGIN = "<!-- config-table:begin -->"
END = "<!-- config-table:end -->"


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value: Any = field.default_factory()  # type: ignore[call-arg]
        return "see `server/config.py`" if isinstance(value, dict) and value else f"`{json.dumps(value)}`"
    if field.default is None:
        return "unset"
    return f"`{field.default}`"


def render() -> str:
    rows = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{name.upper()}` | {_default(field)} | {description} |")
    return "\n".join(rows)


def with_table(document: str) -> str:
    """`document` with the text between the config-table markers replaced by the current table."""
    head, _, rest = document.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{render()}\n{END}{tail}"


if __name__ == "__main__":
    import sys
    from pathlib import Path

    if sys.argv[1:] == ["--write"]:
        path = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
        path.write_text(with_table(path.read_text()))
    else:
        print(render())

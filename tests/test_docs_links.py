"""Every relative link in the README, docs/ and bench/README.md leads to a file or directory of the repository,
and the README links every one of those documents."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", ROOT / "bench" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(?!`).+?(?<!`)\1", re.DOTALL)
INLINE = re.compile(r"\[[^\]]*\]\(\s*(<[^>]*>|[^)\s]+)[^)]*\)")
DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)", re.MULTILINE)
EXTERNAL = re.compile(r"^(https?://|mailto:)", re.IGNORECASE)


def targets(markdown: str) -> list[str]:
    """The link targets of a Markdown text, outside code blocks and code spans."""
    text = CODE_SPAN.sub("code", FENCE.sub("", markdown))
    found = INLINE.findall(text) + DEFINITION.findall(text)
    return [target.removeprefix("<").removesuffix(">") for target in found]


def broken_links(document: Path, root: Path = ROOT) -> list[str]:
    """The relative links of `document` whose file or directory is not in `root`."""
    broken = []
    for target in targets(document.read_text(encoding="utf-8")):
        path = target.split("#", 1)[0].split("?", 1)[0]
        if EXTERNAL.match(target) or not path:
            continue
        resolved = (root / path.lstrip("/") if path.startswith("/") else document.parent / path).resolve()
        if not resolved.is_relative_to(root.resolve()) or not resolved.exists():
            broken.append(target)
    return broken


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_relative_links_lead_to_files_in_the_repository(document: Path) -> None:
    assert broken_links(document) == []


def test_the_readme_links_every_document() -> None:
    linked = {(ROOT / target.split("#", 1)[0]).resolve() for target in targets((ROOT / "README.md").read_text())}
    assert [str(path.relative_to(ROOT)) for path in DOCUMENTS[1:] if path not in linked] == []


def test_the_check_reads_links_as_markdown_does(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "here.md").write_text("# Here\n")
    document = tmp_path / "docs" / "index.md"
    document.write_text(
        "[ok](here.md) [`ok`](here.md#here) [ok](../docs) [ok](#top) [ok](https://example.com/x) "
        "[ok](mailto:a@example.com) `[not a link](gone.md)`\n"
        "```sh\necho '[not a link](gone.md)'\n```\n"
        "[gone](gone.md#anchor) [outside](../../etc/passwd) ![picture](img/gone.png)\n"
        "[ref]: ../missing.md\n"
    )
    assert broken_links(document, tmp_path) == [
        "gone.md#anchor",
        "../../etc/passwd",
        "img/gone.png",
        "../missing.md",
    ]

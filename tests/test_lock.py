"""The dependency lock check fails whenever pyproject.toml and requirements/*.lock disagree.

Each case runs scripts/lock.py in a copy of the project's dependency files (the script finds its project
from its own location), changed the way a contributor might, and reads its verdict.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "lock.py", tmp_path / "scripts" / "lock.py")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(ROOT / "requirements", tmp_path / "requirements")
    return tmp_path


def check(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(project / "scripts" / "lock.py"), "check", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} is not in {path.name}"
    path.write_text(text.replace(old, new, 1))


def test_the_committed_lock_agrees_with_pyproject(project: Path) -> None:
    result = check(project)
    assert result.returncode == 0, result.stderr


def test_this_environment_is_exactly_the_lock() -> None:
    result = check(ROOT, "--installed")
    assert result.returncode == 0, result.stderr


def test_a_changed_version_range_fails_until_relocked(project: Path) -> None:
    edit(project / "pyproject.toml", '"redis>=', '"redis>=0.1,')
    result = check(project)
    assert result.returncode == 1
    assert "requirements/dev.lock was made from other dependencies" in result.stderr
    assert "run `make lock`" in result.stderr


def test_a_new_dependency_fails_until_relocked(project: Path) -> None:
    edit(project / "pyproject.toml", "dependencies = [\n", 'dependencies = [\n  "six",\n')
    assert check(project).returncode == 1


def test_a_runtime_pin_that_differs_from_the_dev_lock_fails(project: Path) -> None:
    runtime = project / "requirements" / "runtime.lock"
    pinned = re.search(r"^redis==(\S+)", runtime.read_text(), re.MULTILINE)
    assert pinned is not None
    edit(runtime, f"redis=={pinned.group(1)}", "redis==0.0.1")
    result = check(project)
    assert result.returncode == 1
    assert "runtime.lock has redis==0.0.1" in result.stderr


def test_torch_must_be_the_cpu_build(project: Path) -> None:
    dev = project / "requirements" / "dev.lock"
    edit(dev, "+cpu ", " ")
    result = check(project)
    assert result.returncode == 1
    assert "torch's cpu build" in result.stderr


def test_a_missing_lock_says_how_to_make_it(project: Path) -> None:
    (project / "requirements" / "runtime.lock").unlink()
    result = check(project)
    assert result.returncode == 1
    assert "runtime.lock is missing: run `make lock`" in result.stderr

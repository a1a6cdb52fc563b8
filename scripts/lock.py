"""The Python dependency lock: make it, check it, install exactly it.

    python3 scripts/lock.py lock [--upgrade]        pyproject.toml -> requirements/{dev,runtime}.lock
    python3 scripts/lock.py sync PYTHON LOCK [--editable]
                                                    install exactly LOCK into PYTHON's environment
    PYTHON scripts/lock.py check [--installed]      the locks agree with pyproject.toml (and with what is installed)

The locks are pip-style requirement files with exact versions and sha256 hashes, written by `uv pip compile`
and installed by `uv pip sync --require-hashes` (why uv and this format: docs/dependencies.md). uv itself is
pinned in the dev lock and bootstrapped from it with pip's --require-hashes into a directory of its own, so it
is never part of the environment it installs. Only the standard library is used here: `lock` and `sync` run
before any environment exists.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
LOCK_DIR = ROOT / "requirements"
DEV_LOCK = LOCK_DIR / "dev.lock"
RUNTIME_LOCK = LOCK_DIR / "runtime.lock"
# The machines the locks are made for: the Dockerfile's base image and the development machines.
PYTHON_VERSION = "3.11"
PYTHON_PLATFORM = "x86_64-manylinux_2_36"  # glibc 2.36: Debian 12 (bookworm)
# PyTorch publishes its CPU build (no CUDA libraries, ~200 MB instead of several GB) under this local version.
TORCH_BUILD = "cpu"
TORCH_CPU_PAGE = "https://download.pytorch.org/whl/cpu/torch/"
PURPOSE = {DEV_LOCK: "What `make deps` installs", RUNTIME_LOCK: "What the server image installs"}
FINGERPRINT_PREFIX = "# pyproject.toml dependencies sha256: "
# In a virtual environment but never locked: the installer that made the environment, and this project.
UNLOCKED = {"pip", "tutorstream"}
UV_TOOL_DIR = Path("tools") / "uv"

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def project() -> dict[str, object]:
    with PYPROJECT.open("rb") as handle:
        data: dict[str, object] = tomllib.load(handle)
    return data


def fingerprint(data: dict[str, object]) -> str:
    """A digest of everything in pyproject.toml that decides what the lock holds."""
    proj = data["project"]
    assert isinstance(proj, dict)
    build = data.get("build-system", {})
    assert isinstance(build, dict)
    subject = {
        "requires-python": proj.get("requires-python"),
        "dependencies": proj.get("dependencies", []),
        "optional-dependencies": proj.get("optional-dependencies", {}),
        "build-system": build.get("requires", []),
        "torch-build": TORCH_BUILD,
        "python": [PYTHON_VERSION, PYTHON_PLATFORM],
    }
    return hashlib.sha256(json.dumps(subject, sort_keys=True).encode()).hexdigest()


def pins(lock: Path) -> dict[str, str]:
    """name -> exact version for every requirement in a lock file."""
    found: dict[str, str] = {}
    for line in lock.read_text().splitlines():
        match = _PIN.match(line)
        if match:
            found[canonical(match.group(1))] = match.group(2)
    return found


def requirement_block(lock: Path, name: str) -> str:
    """The lines of one requirement (name==version plus its --hash continuation lines)."""
    lines = lock.read_text().splitlines()
    for index, line in enumerate(lines):
        match = _PIN.match(line)
        if match and canonical(match.group(1)) == name:
            block = [line]
            while block[-1].rstrip().endswith("\\"):
                index += 1
                block.append(lines[index])
            return "\n".join(block).rstrip().rstrip("\\") + "\n"
    raise SystemExit(f"{lock.relative_to(ROOT)} has no pinned {name}")


def exact_pin(requirements: list[str], name: str) -> str | None:
    for requirement in requirements:
        match = _PIN.match(requirement)
        if match and canonical(match.group(1)) == name:
            return match.group(2)
    return None


def torch_pin(data: dict[str, object]) -> str:
    proj = data["project"]
    assert isinstance(proj, dict)
    version = exact_pin(proj.get("dependencies", []), "torch")
    if version is None:
        raise SystemExit("pyproject.toml must pin torch with == (its CPU build is selected by the lock)")
    return version


def dev_pin(name: str) -> str:
    proj = project()["project"]
    assert isinstance(proj, dict)
    version = exact_pin(proj.get("optional-dependencies", {}).get("dev", []), name)
    if version is None:
        raise SystemExit(f"pyproject.toml's dev dependencies must pin {name} with ==")
    return version


def torch_source() -> str:
    """Where the torch CPU build comes from: TORCH_FIND_LINKS, else pip's configured find-links, else PyTorch."""
    explicit = os.environ.get("TORCH_FIND_LINKS") or os.environ.get("PIP_FIND_LINKS")
    if explicit:
        return explicit.split()[0]
    configured = subprocess.run(
        [sys.executable, "-m", "pip", "config", "get", "global.find-links"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    return configured[0] if configured else TORCH_CPU_PAGE


def uv(venv_python: Path) -> Path:
    """uv as pinned in the dev lock, installed with pip (hash-checked) next to, not inside, the environment."""
    tool_dir = venv_python.parent.parent / UV_TOOL_DIR
    binary = tool_dir / "bin" / "uv"
    locked = pins(DEV_LOCK) if DEV_LOCK.exists() else {}
    wanted = locked.get("uv") or dev_pin("uv")
    if binary.exists():
        current = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True).stdout
        if current.split()[1] == wanted:
            return binary
    shutil.rmtree(tool_dir, ignore_errors=True)
    with tempfile.TemporaryDirectory() as scratch:
        requirement = Path(scratch) / "uv.txt"
        # Before the first lock exists there are no hashes to check: only then is uv taken by its version alone.
        hashed = "uv" in locked
        requirement.write_text(requirement_block(DEV_LOCK, "uv") if hashed else f"uv=={wanted}\n")
        subprocess.run(
            [
                *(str(venv_python), "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(tool_dir)),
                *(["--require-hashes"] if hashed else []),
                *("-r", str(requirement)),
            ],
            check=True,
        )
    return binary


def compile_locks(venv_python: Path, upgrade: bool) -> None:
    data = project()
    digest = fingerprint(data)
    build = data.get("build-system", {})
    assert isinstance(build, dict)
    binary = uv(venv_python)
    with tempfile.TemporaryDirectory() as scratch:
        build_in = Path(scratch) / "build-system.in"
        build_in.write_text("\n".join(build.get("requires", [])) + "\n")
        torch_in = Path(scratch) / "torch-build.txt"
        torch_in.write_text(f"torch=={torch_pin(data)}+{TORCH_BUILD}\n")
        labels = {str(build_in): "pyproject.toml (build-system)", str(torch_in): f"torch {TORCH_BUILD} build"}
        for lock, extras in ((DEV_LOCK, ["--extra", "dev"]), (RUNTIME_LOCK, ["--constraint", str(DEV_LOCK)])):
            previous = lock.read_text() if lock.exists() else ""
            out = Path(scratch) / lock.name
            if previous and not upgrade:
                out.write_text(previous)
            command = [
                *(str(binary), "pip", "compile", "--quiet", str(PYPROJECT.relative_to(ROOT)), str(build_in)),
                *extras,
                *("--constraint", str(torch_in), "--find-links", torch_source(), "--generate-hashes", "--no-header"),
                *("--python-version", PYTHON_VERSION, "--python-platform", PYTHON_PLATFORM, "--output-file", str(out)),
                *(["--upgrade"] if upgrade else []),
            ]
            subprocess.run(command, check=True, cwd=ROOT)
            body = out.read_text()
            for path, label in labels.items():
                body = body.replace(path, label)
            body = body.replace(str(DEV_LOCK), "requirements/dev.lock")
            header = (
                f"# {PURPOSE[lock]}: exact versions and sha256 hashes of every Python package.\n"
                "# Made by `make lock` from pyproject.toml; do not edit by hand (docs/dependencies.md).\n"
                f"{FINGERPRINT_PREFIX}{digest}\n"
            )
            lock.write_text(header + body)
            print(f"wrote {lock.relative_to(ROOT)}: {len(pins(lock))} packages")


def sync(venv_python: Path, lock: Path, editable: bool) -> None:
    binary = uv(venv_python)
    env = {**os.environ, "VIRTUAL_ENV": str(venv_python.parent.parent)}
    # Bytecode compiled at install: torch, transformers, spaCy and Presidio otherwise compile from source in every
    # process that imports them wherever bytecode writing is off (PYTHONDONTWRITEBYTECODE, read-only installs) —
    # about 12 s of each server, worker and CLI start.
    subprocess.run(
        [
            *(str(binary), "pip", "sync", "--quiet", "--compile-bytecode", "--python", str(venv_python)),
            "--require-hashes",
            *("--find-links", torch_source(), str(lock)),
        ],
        check=True,
        env=env,
    )
    # The project itself, built with the locked setuptools rather than whatever an isolated build would fetch.
    target = ["-e", str(ROOT)] if editable else [str(ROOT)]
    subprocess.run(
        [
            str(binary),
            "pip",
            "install",
            "--quiet",
            "--python",
            str(venv_python),
            "--no-deps",
            "--no-build-isolation",
            *target,
        ],
        check=True,
        env=env,
    )


def requirement_names(requirements: list[str]) -> dict[str, str]:
    named: dict[str, str] = {}
    for requirement in requirements:
        match = _NAME.match(requirement)
        if match:
            named[canonical(match.group(1))] = requirement
    return named


def check(installed: bool) -> list[str]:
    """Every way the locks can disagree with pyproject.toml or with the environment, as sentences."""
    problems: list[str] = []
    data = project()
    digest = fingerprint(data)
    for lock in (DEV_LOCK, RUNTIME_LOCK):
        if not lock.exists():
            problems.append(f"{lock.relative_to(ROOT)} is missing: run `make lock`")
            continue
        stamped = [line for line in lock.read_text().splitlines() if line.startswith(FINGERPRINT_PREFIX)]
        if stamped != [FINGERPRINT_PREFIX + digest]:
            problems.append(
                f"{lock.relative_to(ROOT)} was made from other dependencies than pyproject.toml now lists: "
                "run `make lock` and commit the result"
            )
    if problems:
        return problems
    proj = data["project"]
    assert isinstance(proj, dict)
    dev, runtime = pins(DEV_LOCK), pins(RUNTIME_LOCK)
    wanted = requirement_names(proj["dependencies"]) | requirement_names(proj["optional-dependencies"]["dev"])
    for name in sorted(wanted):
        if name not in dev:
            problems.append(f"requirements/dev.lock lacks {wanted[name]!r}")
    for name in sorted(requirement_names(proj["dependencies"])):
        if name not in runtime:
            problems.append(f"requirements/runtime.lock lacks {name}")
    for name, version in sorted(runtime.items()):
        if dev.get(name) != version:
            problems.append(f"runtime.lock has {name}=={version} but dev.lock has {dev.get(name)}")
    if not dev.get("torch", "").endswith(f"+{TORCH_BUILD}"):
        problems.append(f"requirements/dev.lock must hold torch's {TORCH_BUILD} build, not {dev.get('torch')}")
    if installed:
        problems += compare_installed(dev)
    return problems


def compare_installed(locked: dict[str, str]) -> list[str]:
    from importlib import metadata

    present = {canonical(d.metadata["Name"]): d.version for d in metadata.distributions()}
    present = {name: version for name, version in present.items() if name not in UNLOCKED}
    problems = [f"installed but not locked: {n}=={v}" for n, v in sorted(present.items()) if n not in locked]
    problems += [f"locked but not installed: {n}=={v}" for n, v in sorted(locked.items()) if n not in present]
    problems += [
        f"{n}: installed {present[n]}, locked {v}"
        for n, v in sorted(locked.items())
        if n in present and present[n] != v
    ]
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    lock_parser = commands.add_parser("lock", help="refresh requirements/*.lock from pyproject.toml")
    lock_parser.add_argument("--python", type=Path, default=ROOT / ".venv" / "bin" / "python")
    lock_parser.add_argument("--upgrade", action="store_true", help="newest versions the ranges allow")
    sync_parser = commands.add_parser("sync", help="install exactly a lock into an environment")
    sync_parser.add_argument("python", type=Path, help="the environment's python")
    sync_parser.add_argument("lock", type=Path)
    sync_parser.add_argument("--editable", action="store_true", help="install this project editable")
    check_parser = commands.add_parser("check", help="the locks agree with pyproject.toml")
    check_parser.add_argument("--installed", action="store_true", help="and with this interpreter's packages")
    args = parser.parse_args()
    if args.command == "lock":
        compile_locks(args.python, args.upgrade)
    elif args.command == "sync":
        sync(args.python, args.lock.resolve(), args.editable)
    else:
        problems = check(args.installed)
        for problem in problems:
            print(f"lock: {problem}", file=sys.stderr)
        if problems:
            raise SystemExit(1)
        scope = " and with this environment" if args.installed else ""
        print(f"lock: requirements/*.lock agree with pyproject.toml{scope}")


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as failed:
        raise SystemExit(f"lock: {Path(failed.cmd[0]).name} failed with exit status {failed.returncode}") from None

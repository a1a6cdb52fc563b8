"""Regenerate the committed protobuf/gRPC code, or check that it is up to date (`--check`).

Python: grpc_tools.protoc with mypy-protobuf stubs into generated/python.
TypeScript: buf with the local protoc-gen-es plugin into generated/ts.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc_tools

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
PY_OUT = ROOT / "generated" / "python"
TS_OUT = ROOT / "generated" / "ts"


def generate_python(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    plugin_dir = Path(sys.executable).parent
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{well_known}",
            f"--plugin=protoc-gen-mypy={plugin_dir / 'protoc-gen-mypy'}",
            f"--plugin=protoc-gen-mypy_grpc={plugin_dir / 'protoc-gen-mypy_grpc'}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            f"--mypy_out={out}",
            f"--mypy_grpc_out={out}",
            *protos,
        ],
        check=True,
        cwd=ROOT,
    )
    for package in {p.parent for p in out.rglob("*_pb2.py")} | {out / "tutorstream"}:
        (package / "__init__.py").touch()
        (package / "py.typed").touch()


def generate_ts(out: Path) -> None:
    buf = ROOT / "node_modules" / ".bin" / "buf"
    if not buf.exists():
        raise SystemExit("buf is missing: run `npm ci` first")
    template = (ROOT / "buf.gen.yaml").read_text().replace("out: generated/ts", f"out: {out}")
    subprocess.run([str(buf), "generate", "--template", template], check=True, cwd=ROOT)


def differences(left: Path, right: Path) -> list[str]:
    comparison = filecmp.dircmp(left, right, ignore=["__pycache__"])
    found = [f"only in committed: {left / n}" for n in comparison.left_only]
    found += [f"missing from committed: {left / n}" for n in comparison.right_only]
    found += [
        f"differs: {left / n}" for n in comparison.common_files if (left / n).read_bytes() != (right / n).read_bytes()
    ]
    for sub in comparison.common_dirs:
        found += differences(left / sub, right / sub)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the committed code is stale")
    args = parser.parse_args()
    if not args.check:
        shutil.rmtree(PY_OUT, ignore_errors=True)
        generate_python(PY_OUT)
        generate_ts(TS_OUT)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh_py, fresh_ts = Path(tmp) / "python", Path(tmp) / "ts"
        generate_python(fresh_py)
        generate_ts(fresh_ts)
        problems = differences(PY_OUT, fresh_py) + differences(TS_OUT, fresh_ts)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print("generated code is stale: run `make generate` and commit", file=sys.stderr)
        return 1
    print("generated code is up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

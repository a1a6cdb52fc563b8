"""The browser demo builds: its TypeScript type-checks against the generated API, the bundle exists, and no
third-party .proto file is committed (the google.rpc/grpc.health descriptors are generated at build time)."""

from __future__ import annotations

import json
import re
import subprocess

from tests.edge.support import ROOT, WEB_BUILD


def test_web_sources_type_check(web_build: None) -> None:
    result = subprocess.run(
        [
            str(ROOT / "node_modules" / ".bin" / "tsc"),
            "--noEmit",
            "-p",
            str(ROOT / "clients" / "web" / "tsconfig.json"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_bundle_and_page_are_built(web_build: None) -> None:
    page = (WEB_BUILD / "index.html").read_text()
    assert '<script type="module" src="app.js"></script>' in page
    bundle = (WEB_BUILD / "app.js").read_text()
    # Connect-ES's grpc-web protocol and the generated clients are inside the bundle.
    assert "application/grpc-web+proto" in bundle
    assert "streamChat" in bundle
    assert (WEB_BUILD / "styles.css").stat().st_size > 1000


def test_dashboard_page_bundles_chart_js_at_its_pinned_version(web_build: None) -> None:
    page = (WEB_BUILD / "dashboard.html").read_text()
    assert '<script type="module" src="dashboard.js"></script>' in page
    bundle = (WEB_BUILD / "dashboard.js").read_text()
    assert "listFlaggedInteractions" in bundle and "getExperimentReport" in bundle
    pinned = json.loads((ROOT / "package.json").read_text())["dependencies"]["chart.js"]
    locked = json.loads((ROOT / "package-lock.json").read_text())["packages"]["node_modules/chart.js"]["version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned) and locked == pinned
    # Chart.js's licence banner names its version; esbuild keeps it beside the bundle.
    assert f"Chart.js v{pinned}" in (WEB_BUILD / "dashboard.js.LEGAL.txt").read_text()


def test_no_third_party_protos_are_committed() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "*.proto"], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout.split()
    assert tracked, "git ls-files found no protos at all"
    assert all(path.startswith("protos/tutorstream/") for path in tracked), tracked

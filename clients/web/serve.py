"""Serve the built web demo (build/web) to Envoy, which puts it on the same origin as the grpc-web API.

    python clients/web/serve.py [--host 127.0.0.1] [--port 8081] [--root build/web]

Only GET and HEAD are answered; files outside the root are never served.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType

DEFAULT_ROOT = Path(__file__).resolve().parent.parent.parent / "build" / "web"


class DemoHandler(SimpleHTTPRequestHandler):
    server_version = "tutorstream-web"
    sys_version = ""
    extensions_map = {  # noqa: RUF012 - the base class declares it as a plain class attribute
        **SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
        ".map": "application/json",
        ".css": "text/css",
        ".html": "text/html; charset=utf-8",
    }

    def end_headers(self) -> None:
        # The demo is rebuilt in place; a stale bundle would not match the API.
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"web {self.address_string()} {format % args}\n")

    def list_directory(self, path: str | os.PathLike[str]) -> None:
        self.send_error(404, "not found")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    args = parser.parse_args(argv)
    if not (args.root / "index.html").is_file():
        print(f"{args.root}/index.html is missing: build the demo with `make web`", file=sys.stderr)
        return 1
    handler = functools.partial(DemoHandler, directory=str(args.root))
    server = ThreadingHTTPServer((args.host, args.port), handler)
    server.daemon_threads = True

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(f"web demo on http://{args.host}:{server.server_port}/ from {args.root}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

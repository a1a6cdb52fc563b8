"""Render the Envoy edge config from envoy/envoy.yaml.in.

The streaming routes come from the API contract itself (every RPC with a streamed request or response gets
the long-lived-stream route), so a new streaming RPC cannot silently inherit the unary timeout.

    python envoy/render.py                      # print the local-stack config (same as envoy/envoy.yaml)
    python envoy/render.py --profile compose    # the config compose.yaml mounts
    python envoy/render.py --listen-port 18080 --grpc-address 127.0.0.1:50999 --out /tmp/envoy.yaml
    python envoy/render.py --write              # regenerate both committed files
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from string import Template

from grpc_health.v1 import health_pb2
from tutorstream.v1 import (
    agent_service_pb2,
    analytics_service_pb2,
    chat_service_pb2,
    transcript_service_pb2,
)

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "envoy.yaml.in"
LOCAL_OUTPUT = HERE / "envoy.yaml"
COMPOSE_OUTPUT = HERE / "envoy.compose.yaml"
_API_MODULES = (chat_service_pb2, agent_service_pb2, transcript_service_pb2, analytics_service_pb2)
_ROUTE_INDENT = " " * 24


@dataclass(frozen=True)
class EdgeConfig:
    """Everything that differs between the local stack, compose and tests."""

    listen_address: str = "127.0.0.1"
    listen_port: int = 8080
    admin_port: int = 9901
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051
    web_host: str = "127.0.0.1"
    web_port: int = 8081
    allowed_origins: tuple[str, ...] = field(default=())
    cluster_type: str = "STATIC"
    health_interval: str = "2s"
    unary_timeout: str = "60s"
    max_connections: int = 10_000
    max_heap_bytes: int = 1 << 30

    def origins(self) -> tuple[str, ...]:
        """The configured origins, or the demo's own origin (as 127.0.0.1 and as localhost)."""
        if self.allowed_origins:
            return self.allowed_origins
        hosts: tuple[str, ...]
        if self.listen_address in ("127.0.0.1", "0.0.0.0"):
            hosts = ("127.0.0.1", "localhost")
        else:
            hosts = (self.listen_address,)
        return tuple(f"http://{host}:{self.listen_port}" for host in hosts)


PROFILES: dict[str, EdgeConfig] = {
    "local": EdgeConfig(),
    "compose": EdgeConfig(
        listen_address="0.0.0.0",
        grpc_host="server",
        web_host="web",
        cluster_type="STRICT_DNS",
        health_interval="5s",
    ),
}


def streaming_methods() -> list[str]:
    """`/package.Service/Method` paths of every streaming RPC the edge forwards."""
    paths = [
        f"/{service.full_name}/{method.name}"
        for module in _API_MODULES
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
        if method.server_streaming or method.client_streaming
    ]
    health = health_pb2.DESCRIPTOR.services_by_name["Health"]
    paths.append(f"/{health.full_name}/Watch")
    return sorted(paths)


def _streaming_routes() -> str:
    lines: list[str] = []
    for path in streaming_methods():
        lines += [
            f'- match: {{ path: "{path}" }}',
            "  route:",
            "    cluster: tutorstream_grpc",
            "    timeout: 0s",
            "    idle_timeout: 0s",
            "    max_stream_duration: { grpc_timeout_header_max: 0s }",
        ]
    return "\n".join(_ROUTE_INDENT + line for line in lines)


def render(config: EdgeConfig) -> str:
    if config.cluster_type not in ("STATIC", "STRICT_DNS"):
        raise ValueError(f"cluster type must be STATIC or STRICT_DNS, got {config.cluster_type!r}")
    origins = [{"exact": origin} for origin in config.origins()]
    return Template(TEMPLATE.read_text()).substitute(
        listen_address=config.listen_address,
        listen_port=config.listen_port,
        admin_port=config.admin_port,
        grpc_host=config.grpc_host,
        grpc_port=config.grpc_port,
        web_host=config.web_host,
        web_port=config.web_port,
        allowed_origins=json.dumps(origins),
        cluster_type=config.cluster_type,
        health_interval=config.health_interval,
        unary_timeout=config.unary_timeout,
        max_connections=config.max_connections,
        max_heap_bytes=config.max_heap_bytes,
        streaming_routes=_streaming_routes(),
    )


def _split_address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="local")
    parser.add_argument("--listen-address")
    parser.add_argument("--listen-port", type=int)
    parser.add_argument("--admin-port", type=int)
    parser.add_argument("--grpc-address", type=_split_address, help="HOST:PORT of the gRPC server")
    parser.add_argument("--web-address", type=_split_address, help="HOST:PORT of the static web server")
    parser.add_argument(
        "--allowed-origin",
        action="append",
        default=[],
        help="a CORS origin to allow (repeatable); default: the demo's own origin",
    )
    parser.add_argument("--health-interval", help="upstream health-check interval, e.g. 1s")
    parser.add_argument("--out", type=Path, help="write here instead of stdout")
    parser.add_argument("--write", action="store_true", help="regenerate the committed configs")
    args = parser.parse_args(argv)
    if args.write:
        LOCAL_OUTPUT.write_text(render(PROFILES["local"]))
        COMPOSE_OUTPUT.write_text(render(PROFILES["compose"]))
        return 0
    config = PROFILES[args.profile]
    if args.listen_address:
        config = replace(config, listen_address=args.listen_address)
    if args.listen_port is not None:
        config = replace(config, listen_port=args.listen_port)
    if args.admin_port is not None:
        config = replace(config, admin_port=args.admin_port)
    if args.grpc_address:
        config = replace(config, grpc_host=args.grpc_address[0], grpc_port=args.grpc_address[1])
    if args.web_address:
        config = replace(config, web_host=args.web_address[0], web_port=args.web_address[1])
    if args.allowed_origin:
        config = replace(config, allowed_origins=tuple(args.allowed_origin))
    if args.health_interval:
        config = replace(config, health_interval=args.health_interval)
    text = render(config)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

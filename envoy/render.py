"""Render the Envoy edge config from envoy/envoy.yaml.in.

The streaming routes come from the API contract itself (every RPC with a streamed request or response gets
the long-lived-stream route), so a new streaming RPC cannot silently inherit the unary timeout.

    python envoy/render.py                      # print the local-stack config (same as envoy/envoy.yaml)
    python envoy/render.py --profile compose    # the config compose.yaml mounts
    python envoy/render.py --listen-port 18080 --grpc-address 127.0.0.1:50999 --out /tmp/envoy.yaml
    python envoy/render.py --tls-cert server.pem --tls-key server-key.pem \
        --upstream-ca ca.pem --upstream-cert client.pem --upstream-key client-key.pem   # TLS both ways (docs/tls.md)
    python envoy/render.py --write              # regenerate both committed files
"""

from __future__ import annotations

import argparse
import ipaddress
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
    # TLS on the listener: the certificate chain and key files Envoy serves (both or neither).
    tls_cert_file: str = ""
    tls_key_file: str = ""
    # TLS to the gRPC server: the CA its certificate must chain to, the name or address that certificate must
    # carry (default: grpc_host), and the client certificate Envoy presents when the server asks for one.
    upstream_ca_file: str = ""
    upstream_server_name: str = ""
    upstream_cert_file: str = ""
    upstream_key_file: str = ""
    # A plaintext listener on an address other than loopback (a private network behind a TLS-terminating
    # load balancer, or a container whose port is published on loopback only).
    allow_plaintext: bool = False

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert_file else "http"

    def origins(self) -> tuple[str, ...]:
        """The configured origins, or the demo's own origin (as 127.0.0.1 and as localhost)."""
        if self.allowed_origins:
            return self.allowed_origins
        hosts: tuple[str, ...]
        if self.listen_address in ("127.0.0.1", "0.0.0.0"):
            hosts = ("127.0.0.1", "localhost")
        else:
            hosts = (self.listen_address,)
        return tuple(f"{self.scheme}://{host}:{self.listen_port}" for host in hosts)

    def check(self) -> None:
        """Raise ValueError with the reason when the options cannot work together."""
        if self.cluster_type not in ("STATIC", "STRICT_DNS"):
            raise ValueError(f"cluster type must be STATIC or STRICT_DNS, got {self.cluster_type!r}")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("--tls-cert and --tls-key go together")
        if bool(self.upstream_cert_file) != bool(self.upstream_key_file):
            raise ValueError("--upstream-cert and --upstream-key go together")
        if (self.upstream_cert_file or self.upstream_server_name) and not self.upstream_ca_file:
            raise ValueError("--upstream-cert and --upstream-server-name need --upstream-ca (TLS to the server)")
        if not self.tls_cert_file and not self.allow_plaintext and not _is_loopback(self.listen_address):
            raise ValueError(
                f"refusing a plaintext listener on {self.listen_address}: bearer tokens would cross the network in "
                "the clear. Give --tls-cert and --tls-key (docs/tls.md), or --allow-plaintext where only a "
                "TLS-terminating proxy or a loopback-published container port reaches it"
            )


def _is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def _yaml(value: object, indent: int) -> list[str]:
    """`value` (dicts, lists, scalars) as block YAML lines at `indent` spaces; scalars as JSON, which YAML reads."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{json.dumps(key) if key.startswith('@') else key}:")
                lines += _yaml(item, indent + 2)
            else:
                lines.append(f"{pad}{json.dumps(key) if key.startswith('@') else key}: {json.dumps(item)}")
    elif isinstance(value, list):
        for item in value:
            nested = _yaml(item, indent + 2)
            lines.append(f"{pad}- {nested[0].lstrip()}")
            lines += nested[1:]
    else:
        lines.append(f"{pad}{json.dumps(value)}")
    return lines


def _certificate(cert_file: str, key_file: str) -> dict[str, object]:
    return {"certificate_chain": {"filename": cert_file}, "private_key": {"filename": key_file}}


def _transport_socket(context_type: str, context: dict[str, object], indent: int) -> str:
    """A TLS transport socket appended after the line that ends where it belongs (empty output: no TLS)."""
    socket = {
        "transport_socket": {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": f"type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.{context_type}",
                **context,
            },
        }
    }
    return "\n" + "\n".join(_yaml(socket, indent))


def listener_transport_socket(config: EdgeConfig) -> str:
    if not config.tls_cert_file:
        return ""
    common = {
        "alpn_protocols": ["h2", "http/1.1"],
        "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
        "tls_certificates": [_certificate(config.tls_cert_file, config.tls_key_file)],
    }
    return _transport_socket("DownstreamTlsContext", {"common_tls_context": common}, indent=10)


def grpc_transport_socket(config: EdgeConfig) -> str:
    if not config.upstream_ca_file:
        return ""
    name = config.upstream_server_name or config.grpc_host
    try:
        ipaddress.ip_address(name)
        san_type, sni = "IP_ADDRESS", {}
    except ValueError:
        san_type, sni = "DNS", {"sni": name}
    common: dict[str, object] = {
        "alpn_protocols": ["h2"],
        "validation_context": {
            "trusted_ca": {"filename": config.upstream_ca_file},
            "match_typed_subject_alt_names": [{"san_type": san_type, "matcher": {"exact": name}}],
        },
    }
    if config.upstream_cert_file:
        common["tls_certificates"] = [_certificate(config.upstream_cert_file, config.upstream_key_file)]
    return _transport_socket("UpstreamTlsContext", {**sni, "common_tls_context": common}, indent=6)


PROFILES: dict[str, EdgeConfig] = {
    "local": EdgeConfig(),
    "compose": EdgeConfig(
        listen_address="0.0.0.0",
        allow_plaintext=True,  # the container's port is published on the host's loopback only (compose.yaml)
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
    config.check()
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
        listener_transport_socket=listener_transport_socket(config),
        grpc_transport_socket=grpc_transport_socket(config),
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
    parser.add_argument("--tls-cert", help="PEM certificate chain of the listener (turns TLS on)")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument("--upstream-ca", help="PEM CA of the gRPC server's certificate (TLS to the server)")
    parser.add_argument("--upstream-server-name", help="name or address in that certificate (default: its host)")
    parser.add_argument("--upstream-cert", help="PEM client certificate Envoy presents to the gRPC server")
    parser.add_argument("--upstream-key", help="PEM private key of --upstream-cert")
    parser.add_argument(
        "--allow-plaintext", action="store_true", help="allow a plaintext listener on a non-loopback address"
    )
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
    files = {
        "tls_cert_file": args.tls_cert,
        "tls_key_file": args.tls_key,
        "upstream_ca_file": args.upstream_ca,
        "upstream_server_name": args.upstream_server_name,
        "upstream_cert_file": args.upstream_cert,
        "upstream_key_file": args.upstream_key,
    }
    config = replace(config, **{name: value for name, value in files.items() if value})
    if args.allow_plaintext:
        config = replace(config, allow_plaintext=True)
    try:
        text = render(config)
    except ValueError as exc:
        parser.error(str(exc))
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

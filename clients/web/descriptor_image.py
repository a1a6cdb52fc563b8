"""Write a FileDescriptorSet of the third-party protos the web client needs (google.rpc error details and
grpc.health.v1), taken from the descriptors compiled into the installed Python packages.

The build feeds the image to buf + protoc-gen-es, so no third-party .proto file is copied or committed.

    python clients/web/descriptor_image.py OUT.binpb
"""

from __future__ import annotations

import sys
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FileDescriptor
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2

ROOTS = (status_pb2.DESCRIPTOR, error_details_pb2.DESCRIPTOR, health_pb2.DESCRIPTOR)


def _collect(descriptor: FileDescriptor, seen: dict[str, descriptor_pb2.FileDescriptorProto]) -> None:
    if descriptor.name in seen:
        return
    for dependency in descriptor.dependencies:
        _collect(dependency, seen)
    proto = descriptor_pb2.FileDescriptorProto()
    descriptor.CopyToProto(proto)
    seen[descriptor.name] = proto


def build_image() -> descriptor_pb2.FileDescriptorSet:
    """Dependencies first, as protoc orders an image."""
    seen: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    for root in ROOTS:
        _collect(root, seen)
    return descriptor_pb2.FileDescriptorSet(file=list(seen.values()))


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(sys.argv[1])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(build_image().SerializeToString())
    for root in ROOTS:
        print(root.name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env bash
# `make run`: the full local stack on loopback — embedded PostgreSQL + the gRPC server.
set -euo pipefail
cd "$(dirname "$0")/.."
export DATA_DIR="${DATA_DIR:-.data}"
export SEED_DEMO_ON_START="${SEED_DEMO_ON_START:-true}"
echo "tutorstream: gRPC on ${HOST:-127.0.0.1}:${PORT:-50051}, data in ${DATA_DIR}"
echo "  token:   .venv/bin/tutorstream-server token --user me"
echo "  grpcurl: .venv/bin/grpcurl -plaintext 127.0.0.1:${PORT:-50051} list"
exec .venv/bin/tutorstream-server serve

#!/usr/bin/env bash
# `make run`: the full local stack on loopback — embedded PostgreSQL + the gRPC server (demo course seeded),
# Envoy on :8080 (grpc-web + native gRPC) and the browser demo served through Envoy on the same origin.
# `TLS=1 make run`: the same over TLS, with a private CA made in DATA_DIR/tls — Envoy serves https and reaches
# the server over mutual TLS, and the server asks every client for a certificate from that CA (docs/tls.md).
set -euo pipefail
cd "$(dirname "$0")/.."
export DATA_DIR="${DATA_DIR:-.data}"
export SEED_DEMO_ON_START="${SEED_DEMO_ON_START:-true}"
export HOST="${HOST:-127.0.0.1}"
export PORT="${PORT:-50051}"
ENVOY_PORT="${ENVOY_PORT:-8080}"
ENVOY_ADMIN_PORT="${ENVOY_ADMIN_PORT:-9901}"
WEB_PORT="${WEB_PORT:-8081}"
ALLOWED_ORIGINS="${ALLOWED_ORIGINS:-}"
TLS="${TLS:-}"
run_dir="$DATA_DIR/run"
mkdir -p "$run_dir"

# Helpers run in their own sessions (so they survive whatever started this script) and are stopped when the
# server stops; a pid file lets the next run stop one left behind by a crash.
stop_helper() {
  local pidfile="$run_dir/$1.pid"
  if [ -f "$pidfile" ]; then
    local pid
    pid="$(cat "$pidfile")"
    if [ -n "$pid" ] && grep -q "$2" "/proc/$pid/cmdline" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  fi
}

start_helper() {
  local name="$1"
  shift
  setsid -f bash -c 'echo $$ > "$0"; exec "$@"' "$run_dir/$name.pid" "$@" >"$run_dir/$name.log" 2>&1
  for _ in $(seq 50); do
    [ -s "$run_dir/$name.pid" ] && return 0
    sleep 0.1
  done
  echo "tutorstream: $name did not start (see $run_dir/$name.log)" >&2
  return 1
}

cleanup() {
  stop_helper envoy "$run_dir/envoy.yaml"
  stop_helper web "clients/web/serve.py"
}
cleanup
trap cleanup EXIT

echo "tutorstream: building the web demo"
node clients/web/build.mjs

origins=()
if [ -n "$ALLOWED_ORIGINS" ]; then
  IFS=',' read -ra listed <<<"$ALLOWED_ORIGINS"
  for origin in "${listed[@]}"; do origins+=(--allowed-origin "$origin"); done
fi
scheme=http
edge_tls=()
if [ -n "$TLS" ] && [ "$TLS" != 0 ]; then
  # The CA is kept between runs (trust it once); the server and client certificates are issued anew each time.
  tls_dir="$(cd "$DATA_DIR" && pwd)/tls"
  .venv/bin/tutorstream-server dev-certs --out "$tls_dir" >/dev/null
  export TLS_CERT_FILE="$tls_dir/server.pem" TLS_KEY_FILE="$tls_dir/server-key.pem" TLS_CLIENT_CA_FILE="$tls_dir/ca.pem"
  edge_tls=(--tls-cert "$tls_dir/server.pem" --tls-key "$tls_dir/server-key.pem" --upstream-ca "$tls_dir/ca.pem"
    --upstream-cert "$tls_dir/client.pem" --upstream-key "$tls_dir/client-key.pem")
  scheme=https
fi
.venv/bin/python envoy/render.py --listen-port "$ENVOY_PORT" --admin-port "$ENVOY_ADMIN_PORT" \
  --grpc-address "$HOST:$PORT" --web-address "127.0.0.1:$WEB_PORT" "${origins[@]}" "${edge_tls[@]}" \
  --out "$run_dir/envoy.yaml"

start_helper web .venv/bin/python clients/web/serve.py --port "$WEB_PORT"
start_helper envoy .venv/bin/envoy -c "$run_dir/envoy.yaml" --disable-hot-restart --concurrency 2 -l warning

token="$(.venv/bin/tutorstream-server token --user demo-student)"
teacher_token="$(.venv/bin/tutorstream-server token --user demo-instructor --role instructor --course webdev-101)"
if [ "$scheme" = https ]; then
  transport="TLS, client certificates from $tls_dir/ca.pem required"
  grpcurl_tls="-cacert $tls_dir/ca.pem -cert $tls_dir/client.pem -key $tls_dir/client-key.pem"
  cli_tls="--ca-file $tls_dir/ca.pem --cert-file $tls_dir/client.pem --key-file $tls_dir/client-key.pem "
else
  transport="plaintext"
  grpcurl_tls="-plaintext"
  cli_tls=""
fi
cat <<EOF
tutorstream: gRPC on $HOST:$PORT ($transport), Envoy on $scheme://127.0.0.1:$ENVOY_PORT (admin 127.0.0.1:$ENVOY_ADMIN_PORT), data in $DATA_DIR
  demo:      $scheme://127.0.0.1:$ENVOY_PORT/#token=$token
  dashboard: $scheme://127.0.0.1:$ENVOY_PORT/dashboard.html#token=$teacher_token
  token:     .venv/bin/tutorstream-server token --user me
  teacher:   .venv/bin/tutorstream-server token --user me --role instructor --course webdev-101
  cli:       .venv/bin/tutorstream ${cli_tls}login --token "\$(.venv/bin/tutorstream-server token --user me)"
  grpcurl:   .venv/bin/grpcurl $grpcurl_tls $HOST:$PORT list      (recipes: docs/grpcurl.md)
  logs:      $run_dir/envoy.log, $run_dir/web.log
EOF
if [ "$scheme" = https ]; then
  cat <<EOF
  tls:       trust $tls_dir/ca.pem in the browser (docs/tls.md); check: curl --cacert $tls_dir/ca.pem $scheme://127.0.0.1:$ENVOY_PORT/
EOF
fi
# The server runs as a child so a TERM/INT to this script reaches it (it drains, then exits), after which the
# EXIT trap stops Envoy and the static server.
.venv/bin/tutorstream-server serve &
server=$!
trap 'kill -TERM "$server" 2>/dev/null || true' INT TERM
status=0
while kill -0 "$server" 2>/dev/null; do
  status=0
  wait "$server" || status=$?
done
exit "$status"

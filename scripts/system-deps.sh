#!/usr/bin/env bash
# System packages the test suite and the local stack need. Installs them when running as root.
set -euo pipefail
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# Speech-to-text tests synthesise speech whose words are known.
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
# The browser demo's test drives Debian's Chromium (playwright-core never downloads a browser here).
[ -x /usr/bin/chromium ] || missing+=(chromium fonts-dejavu-core)
command -v jq >/dev/null 2>&1 || missing+=(jq)
command -v setsid >/dev/null 2>&1 || missing+=(util-linux)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing system packages: ${missing[*]} (install them, or run as root)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian package may start its own daemon on 6379; the stack starts Redis itself.
if command -v service >/dev/null 2>&1; then service redis-server stop >/dev/null 2>&1 || true; fi

#!/bin/bash
# Puts promtool and amtool (Debian's prometheus 2.42 and prometheus-alertmanager 0.25 packages)
# under .tools/prom without installing the packages: no daemon, no system service, no root
# needed beyond what apt-get download wants. deploy/check.sh prefers these binaries.
# Idempotent; prints the bin directory.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${LEADFLOW_TOOLS_DIR:-$ROOT/.tools/prom}"
BIN="$DEST/usr/bin"

if [ -x "$BIN/promtool" ] && [ -x "$BIN/amtool" ] && [ -x "$BIN/prometheus-alertmanager" ]; then
  echo "$BIN"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
if ! apt-get download prometheus prometheus-alertmanager >/dev/null 2>&1; then
  # A fresh machine may have no package lists yet.
  apt-get update -qq >/dev/null
  apt-get download prometheus prometheus-alertmanager >/dev/null
fi
mkdir -p "$DEST"
for deb in ./*.deb; do
  dpkg-deb -x "$deb" "$DEST"
done
for tool in promtool amtool prometheus-alertmanager; do
  [ -x "$BIN/$tool" ] || { echo "install-tools: $tool missing after extracting the packages" >&2; exit 1; }
done
echo "$BIN"

#!/usr/bin/env bash
# Fetch the console's vendored browser assets from the npm registry (npm pack: the published tarball,
# no install scripts run) and copy each one's dist file into static/vendor/. Run it to upgrade a
# version; the files are committed, so `make up` needs no network. Versions and licences:
# src/leadflow_console/static/vendor/README.md (update it with the pins below).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
dest="$here/src/leadflow_console/static/vendor"
# package@version  path inside the package  file name in static/vendor
assets=(
  "htmx.org@2.0.11 dist/htmx.min.js htmx.min.js"
  "axe-core@4.14.1 axe.min.js axe.min.js"
  "chart.js@4.5.1 dist/chart.umd.min.js chart.umd.min.js"
)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for asset in "${assets[@]}"; do
  read -r spec path name <<<"$asset"
  (cd "$work" && npm pack --silent "$spec" >/dev/null)
  tarball="$(ls "$work"/*.tgz)"
  tar -xzf "$tarball" -C "$work" "package/$path"
  cp "$work/package/$path" "$dest/$name"
  rm -rf "$work/package" "$tarball"
  echo "$spec -> static/vendor/$name"
done

#!/bin/sh
# Runs one LeadFlow service or the console: LEADFLOW_SERVICE picks the package, the arguments are
# its subcommand (serve, migrate, seed-demo; the console also provision-keys and users create).
# exec so the process receives SIGTERM directly.
set -eu
case "${LEADFLOW_SERVICE:-}" in
  capture|enrichment|scoring|routing|sla|console) ;;
  *) echo "LEADFLOW_SERVICE must be one of capture, enrichment, scoring, routing, sla, console (got '${LEADFLOW_SERVICE:-}')" >&2
     exit 64 ;;
esac
[ "$#" -gt 0 ] || set -- serve
exec python -m "leadflow_${LEADFLOW_SERVICE}" "$@"

#!/bin/sh
# Runs one LeadFlow service: LEADFLOW_SERVICE picks the package, the arguments are its
# subcommand (serve, migrate, seed-demo). exec so the service receives SIGTERM directly.
set -eu
case "${LEADFLOW_SERVICE:-}" in
  capture|enrichment|scoring|routing|sla) ;;
  *) echo "LEADFLOW_SERVICE must be one of capture, enrichment, scoring, routing, sla (got '${LEADFLOW_SERVICE:-}')" >&2
     exit 64 ;;
esac
[ "$#" -gt 0 ] || set -- serve
exec python -m "leadflow_${LEADFLOW_SERVICE}" "$@"

#!/bin/bash
# Run once by the postgres image on an empty data directory (docker-entrypoint-initdb.d), and by
# compose's postgres-databases one-shot on every `up` (a data directory made before a database was
# added): every service, and the console, owns its own database; none reads another's tables.
set -euo pipefail
for service in capture enrichment scoring routing sla console; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<SQL
SELECT 'CREATE DATABASE leadflow_${service} OWNER ${POSTGRES_USER}'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'leadflow_${service}')\gexec
SQL
done

#!/bin/bash
# Checks every deploy asset: Prometheus rules (syntax and unit tests), the Prometheus and
# Alertmanager configs, Alertmanager routing, and the structure of compose, Kubernetes and
# Grafana files. Prints one PASS/FAIL line per check and closes with "N passed, N failed";
# exits non-zero if anything failed or a tool is missing.
#
# Tools: promtool and amtool from .tools/prom (deploy/install-tools.sh puts them there) or PATH;
# override with PROMTOOL / AMTOOL. Python: PYTHON, else the workspace venv, else `uv run`.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2

find_tool() {  # name -> path or empty
  local local_bin="$ROOT/.tools/prom/usr/bin/$1"
  if [ -x "$local_bin" ]; then echo "$local_bin"; else command -v "$1" || true; fi
}
PROMTOOL="${PROMTOOL:-$(find_tool promtool)}"
AMTOOL="${AMTOOL:-$(find_tool amtool)}"
if [ -n "${PYTHON:-}" ]; then
  PY=("$PYTHON")
elif [ -x "$ROOT/.venv/bin/python" ]; then
  PY=("$ROOT/.venv/bin/python")
else
  PY=(uv run --frozen python)
fi

RULES=deploy/prometheus/rules/leadflow.rules.yml
AM_CONFIG=deploy/alertmanager/alertmanager.yml
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

passed=0
failed=0
check() {  # name command... : runs the command, reports its result, shows its output on failure
  local name="$1"; shift
  if "$@" >"$TMP/out" 2>&1; then
    passed=$((passed + 1))
    printf 'PASS %-44s %s\n' "$name" "$(grep -v '^[[:space:]]*$' "$TMP/out" | tail -n 1)"
  else
    failed=$((failed + 1))
    printf 'FAIL %s\n' "$name"
    sed 's/^/     | /' "$TMP/out"
  fi
}

tool_present() {  # label path
  if [ -n "$2" ] && [ -x "$2" ]; then "$2" --version 2>&1 | head -n 1; return 0; fi
  echo "$1 not found: run deploy/install-tools.sh (Debian's prometheus / prometheus-alertmanager packages)"
  return 1
}

routes_test() {  # expected-receiver label=value...
  local expected="$1"; shift
  "$AMTOOL" config routes test --config.file="$AM_CONFIG" --verify.receivers="$expected" "$@"
}

promtool_test() {
  local files=(deploy/prometheus/tests/*.yml)
  "$PROMTOOL" test rules "${files[@]}" || return 1
  echo "${#files[@]} test files, every case passed"
}

dashboard_promql() {
  "${PY[@]}" deploy/check_assets.py dashboard-rules --out "$TMP/dashboard.rules.yml" &&
    "$PROMTOOL" check rules "$TMP/dashboard.rules.yml"
}

check "promtool available" tool_present promtool "$PROMTOOL"
check "amtool available" tool_present amtool "$AMTOOL"
check "promtool check rules" "$PROMTOOL" check rules "$RULES"
check "promtool test rules" promtool_test
check "promtool check config (prometheus.yml)" "$PROMTOOL" check config deploy/prometheus/prometheus.yml
check "amtool check-config" "$AMTOOL" check-config "$AM_CONFIG"
check "route: severity=page -> oncall-pager" routes_test oncall-pager severity=page alertname=LeadflowServiceDown service=routing
check "route: severity=ticket -> ops-tickets" routes_test ops-tickets severity=ticket alertname=LeadflowDeadLettersGrowing
check "route: no severity -> ops-tickets" routes_test ops-tickets alertname=SomethingElse
check "YAML and JSON syntax" "${PY[@]}" deploy/check_assets.py yaml
check "alerts: labels, runbook anchors, tests" "${PY[@]}" deploy/check_assets.py alerts
check "metric names match the code" "${PY[@]}" deploy/check_assets.py metrics
check "dashboard PromQL parses" dashboard_promql
check "grafana dashboard and provisioning" "${PY[@]}" deploy/check_assets.py grafana
check "docker-compose wiring" "${PY[@]}" deploy/check_assets.py compose
check "kubernetes manifests" "${PY[@]}" deploy/check_assets.py k8s
check "topics agree with leadflow_contracts" "${PY[@]}" deploy/check_assets.py topics

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

#!/usr/bin/env bash
# Renders the local Prometheus config into OUT_DIR (prometheus.yml + rules/).
# Usage: render.sh OUT_DIR     Defaults come from deploy/local/env.sh; see render.py for the rest.
set -euo pipefail
[[ $# -eq 1 ]] || { echo "usage: $0 OUT_DIR" >&2; exit 2; }
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../local/env.sh"
export SERVICES ACCOUNT_PORT VAS_PORT PAYMENT_PORT LOYALTY_PORT NOTIFY_PORT STORES_PORT \
  PROMETHEUS_PORT SMSC_HTTP_PORT PAYPROV_PORT LAG_EXPORTER_PORT
export FERRETDB_METRICS_TARGET="${FERRETDB_METRICS_TARGET-127.0.0.1:${FERRETDB_DEBUG_PORT:-8088}}"
# The supervisor (deploy/local/supervise.py) runs unless SUPERVISE=0.
if [[ ${SUPERVISE:-1} == 0 ]]; then supervisor_default=""; else supervisor_default="127.0.0.1:$SUPERVISOR_METRICS_PORT"; fi
export SUPERVISOR_METRICS_TARGET="${SUPERVISOR_METRICS_TARGET-$supervisor_default}"
exec python3 "$here/render.py" "$1"

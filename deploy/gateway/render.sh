#!/usr/bin/env bash
# Renders the local gateway's nginx config into OUT_DIR (nginx.conf, gateway.js, gateway-key.conf).
# Usage: render.sh OUT_DIR
# Defaults come from deploy/local/env.sh; every value can be overridden from the environment
# (see render.py's docstring for the full list). An explicitly empty CARRIER_PROXY_CIDRS or
# RATE_LIMIT_EXEMPT_CIDRS means "none".
set -euo pipefail
[[ $# -eq 1 ]] || { echo "usage: $0 OUT_DIR" >&2; exit 2; }
out=$1
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# env.sh derives LOGS and RUN from the state directory: keep explicit overrides.
logs_override=${LOGS:-} run_override=${GATEWAY_RUN_DIR:-}
source "$here/../local/env.sh"
LOGS=${logs_override:-$LOGS}

export SERVICES GATEWAY_PORT ACCOUNT_PORT VAS_PORT PAYMENT_PORT LOYALTY_PORT NOTIFY_PORT STORES_PORT LOGS
export GATEWAY_RUN_DIR="${run_override:-$RUN/nginx}"
# 127.0.0.2 stands in for the carrier's proxy and 127.0.0.3 for the load benchmark (tests
# bind their client sockets to these); production sets its own lists.
export CARRIER_PROXY_CIDRS="${CARRIER_PROXY_CIDRS-127.0.0.2/32}"
export RATE_LIMIT_EXEMPT_CIDRS="${RATE_LIMIT_EXEMPT_CIDRS-127.0.0.3/32}"
# Each service gets its own key in X-Gateway-Key: GATEWAY_KEY_<NAME>, by default the laptop-only
# key the service itself assumes in the local profile (servicekit: own_gateway_key).
for name in $SERVICES; do
  var="GATEWAY_KEY_${name^^}"
  export "$var=${!var:-local-gateway-key-$name-service}"
done
# Started as root (CI, this machine), nginx would switch its workers to "nobody": keep the
# current user instead, as the brief for the local platform asks.
if [[ $(id -u) -eq 0 && -z "${GATEWAY_USER:-}" ]]; then
  export GATEWAY_USER="$(id -un) $(id -gn)"
fi
exec python3 "$here/render.py" "$out"

#!/usr/bin/env bash
# The whole local platform: infrastructure, topics, sandboxes, services, gateway,
# Prometheus and demo data. Harmless to run twice: running parts are left running.
# Usage: platform.sh up|down|status|logs [name]
set -euo pipefail
source "$(dirname "$0")/env.sh"
HERE="$(dirname "$0")"
SECRETS="$STATE/secrets"

export JWT_PUBLIC_KEY_FILE="$SECRETS/jwt_ed25519.pub.pem"
export GATEWAY_KEY="${GATEWAY_KEY:-local-gateway-key}"
export LOG_LEVEL="${LOG_LEVEL:-INFO}"
export KAFKA_BOOTSTRAP MONGODB_URL REDIS_URL

# name  port  command  [extra env...]
service_table() {
  echo "smsc-sandbox $SMSC_HTTP_PORT smsc-sandbox SMSC_SMPP_PORT=$SMSC_SMPP_PORT SMSC_HTTP_PORT=$SMSC_HTTP_PORT SMSC_RECORD_FILE=$LOGS/smsc-messages.jsonl"
  echo "payment-provider-sandbox $PAYPROV_PORT payment-provider-sandbox PAYPROV_PORT=$PAYPROV_PORT PAYPROV_IPN_URL=http://127.0.0.1:$GATEWAY_PORT/api/v1/payments/provider/ipn"
  for name in $SERVICES; do
    local upper port
    upper=$(echo "$name" | tr '[:lower:]' '[:upper:]')
    port_var="${upper}_PORT"; port=${!port_var}
    case $name in
      account) echo "account $port account-service HTTP_PORT=$port JWT_PRIVATE_KEY_FILE=$SECRETS/jwt_ed25519.pem SMSC_PORT=$SMSC_SMPP_PORT" ;;
      payment) echo "payment $port payment-service HTTP_PORT=$port PROVIDER_PAY_URL=http://127.0.0.1:$PAYPROV_PORT/paymentv2/vpcpay.html PROVIDER_API_URL=http://127.0.0.1:$PAYPROV_PORT/merchant_webapi/api/transaction PUBLIC_BASE_URL=http://127.0.0.1:$GATEWAY_PORT" ;;
      *) echo "$name $port $name-service HTTP_PORT=$port" ;;
    esac
  done
}

wait_ready() {
  local name=$1 port=$2 path=$3 i
  for ((i = 0; i < 600; i++)); do
    if curl -fsS -o /dev/null "http://127.0.0.1:$port$path" 2>/dev/null; then return 0; fi
    if ! running "$name"; then tail -n 40 "$LOGS/$name.log" >&2; die "$name exited while starting (log: $LOGS/$name.log)"; fi
    sleep 0.1
  done
  tail -n 40 "$LOGS/$name.log" >&2; die "$name not ready on port $port (log: $LOGS/$name.log)"
}

apps_up() {
  local name port cmd env
  while read -r name port cmd env; do
    [[ -x "$ROOT/.venv/bin/$cmd" ]] || { log "skipping $name: $cmd not installed"; continue; }
    # shellcheck disable=SC2086
    start_bg "$name" env $env "$ROOT/.venv/bin/$cmd"
  done < <(service_table)
  while read -r name port cmd env; do
    [[ -x "$ROOT/.venv/bin/$cmd" ]] || continue
    if [[ $name == *sandbox ]]; then wait_ready "$name" "$port" /health; else wait_ready "$name" "$port" /ready; fi
  done < <(service_table)
}

apps_down() {
  local name rest
  while read -r name rest; do stop_bg "$name"; done < <(service_table)
}

up() {
  "$HERE/install.sh" all
  "$HERE/infra.sh" up
  log "creating topics"
  "$PY" -m servicekit.kafka.admin --bootstrap "$KAFKA_BOOTSTRAP" >/dev/null
  "$PY" -m servicekit.auth "$SECRETS" >/dev/null
  apps_up
  log "seeding demo data"
  local seed
  for seed in account-seed payment-seed; do
    [[ " $SERVICES " == *" ${seed%-seed} "* ]] || continue
    "$ROOT/.venv/bin/$seed" >>"$LOGS/seed.log" 2>&1 || { tail -20 "$LOGS/seed.log"; die "$seed failed"; }
  done
  log "indexing the store's tables for FerretDB's filters"
  "$HERE/infra.sh" tune
  [[ -x "$HERE/gateway.sh" ]] && "$HERE/gateway.sh" up
  [[ -x "$HERE/prometheus.sh" ]] && "$HERE/prometheus.sh" up
  where
}

where() {
  cat <<INFO

My MobiFone platform is up.
  Gateway (the app's API)   http://127.0.0.1:$GATEWAY_PORT/api/v1/...
INFO
  local name port cmd env
  while read -r name port cmd env; do
    [[ $name == *sandbox ]] && continue
    printf '  %-24s  http://127.0.0.1:%s/docs  (events: /asyncapi, /asyncapi.json)\n' "$name service" "$port"
  done < <(service_table)
  cat <<INFO
  Event catalogue           docs/asyncapi.json (make docs)
  SMS centre sandbox        http://127.0.0.1:$SMSC_HTTP_PORT/messages?to=84901234567 (SMPP on $SMSC_SMPP_PORT)
  Payment provider sandbox  http://127.0.0.1:$PAYPROV_PORT/
  Prometheus                http://127.0.0.1:$PROMETHEUS_PORT/
  Kafka $KAFKA_BOOTSTRAP | MongoDB wire $MONGODB_URL | Redis $REDIS_URL
  Logs: $LOGS/   Stop: make down
INFO
}

case ${1:-} in
  up) up ;;
  apps) apps_up ;;
  down)
    [[ -x "$HERE/prometheus.sh" ]] && "$HERE/prometheus.sh" down
    [[ -x "$HERE/gateway.sh" ]] && "$HERE/gateway.sh" down
    apps_down; "$HERE/infra.sh" down ;;
  restart-apps) apps_down; apps_up ;;
  stop-app) stop_bg "${2:?name}" ;;
  start-app) apps_up ;;  # starts whatever is not running
  status)
    "$HERE/infra.sh" status
    while read -r name port rest; do
      state=stopped; running "$name" && state="running (pid $(cat "$RUN/$name.pid"))"
      printf '  %-12s %s, port %s\n' "$name" "$state" "$port"
    done < <(service_table)
    [[ -x "$HERE/gateway.sh" ]] && "$HERE/gateway.sh" status || true ;;
  logs) if [[ -n "${2:-}" ]]; then tail -n 100 -f "$LOGS/$2.log"; else tail -n 20 -f "$LOGS"/*.log; fi ;;
  where) where ;;
  *) die "usage: $0 up|down|status|logs [name]|restart-apps" ;;
esac

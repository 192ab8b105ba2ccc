#!/usr/bin/env bash
# The whole local platform: infrastructure, topics, sandboxes, services, gateway, Prometheus,
# demo data and the supervisor. Harmless to run twice: running parts are left running.
# Usage: platform.sh up|down|status|logs [name]|where
#        platform.sh parts                 every process of the platform: NAME PORT (- if none)
#        platform.sh start|restart NAME    (re)start one of them with the code `up` uses
#        platform.sh stop-app NAME | start-app [NAME] | restart-apps
set -euo pipefail
source "$(dirname "$0")/env.sh"
HERE="$(cd "$(dirname "$0")" && pwd)"
SECRETS="$STATE/secrets"

export JWT_PUBLIC_KEY_FILE="$SECRETS/jwt_ed25519.pub.pem"
# No shared gateway key: each service assumes its own local default (servicekit's
# own_gateway_key), the one the gateway sends it; GATEWAY_KEY_<NAME> overrides one service's
# key for both (apps_up, deploy/gateway/render.sh). Unset, or one inherited by the supervisor
# from an older platform.sh would reach every service.
unset GATEWAY_KEY
export LOG_LEVEL="${LOG_LEVEL:-INFO}"
export KAFKA_BOOTSTRAP MONGODB_URL REDIS_URL

# name  port  command  [extra env...]
service_table() {
  echo "smsc-sandbox $SMSC_HTTP_PORT smsc-sandbox SMSC_SMPP_PORT=$SMSC_SMPP_PORT SMSC_HTTP_PORT=$SMSC_HTTP_PORT SMSC_RECORD_FILE=$LOGS/smsc-messages.jsonl"
  echo "payment-provider-sandbox $PAYPROV_PORT payment-provider-sandbox PAYPROV_PORT=$PAYPROV_PORT PAYPROV_IPN_URL=http://127.0.0.1:$GATEWAY_PORT/api/v1/payments/provider/ipn"
  echo "push-sandbox $PUSH_SANDBOX_PORT push-sandbox PUSH_SANDBOX_PORT=$PUSH_SANDBOX_PORT"
  local name port_var
  for name in $SERVICES; do
    port_var="${name^^}_PORT"
    case $name in
      account) echo "account ${!port_var} account-service HTTP_PORT=${!port_var} JWT_PRIVATE_KEY_FILE=$SECRETS/jwt_ed25519.pem SMSC_PORT=$SMSC_SMPP_PORT" ;;
      payment) echo "payment ${!port_var} payment-service HTTP_PORT=${!port_var} PROVIDER_PAY_URL=http://127.0.0.1:$PAYPROV_PORT/paymentv2/vpcpay.html PROVIDER_API_URL=http://127.0.0.1:$PAYPROV_PORT/merchant_webapi/api/transaction PUBLIC_BASE_URL=http://127.0.0.1:$GATEWAY_PORT ACCOUNT_INTERNAL_URL=http://127.0.0.1:$ACCOUNT_PORT" ;;
      loyalty) echo "loyalty ${!port_var} loyalty-service HTTP_PORT=${!port_var} ACCOUNT_INTERNAL_URL=http://127.0.0.1:$ACCOUNT_PORT" ;;
      notify) echo "notify ${!port_var} notify-service HTTP_PORT=${!port_var} PUSH_BASE_URL=http://127.0.0.1:$PUSH_SANDBOX_PORT" ;;
      *) echo "$name ${!port_var} $name-service HTTP_PORT=${!port_var}" ;;
    esac
  done
  # Reads every group's offsets from the broker as `ops` (its local password).
  echo "lag-exporter $LAG_EXPORTER_PORT lag-exporter HTTP_PORT=$LAG_EXPORTER_PORT"
}

# Every process of the platform, in the order `up` starts them: NAME PORT ("-": none).
parts() {
  [[ -n ${KAFKA_EXTERNAL:-} ]] || echo "kafka $KAFKA_PORT"
  if [[ -z $MONGODB_URL_EXTERNAL ]]; then
    [[ $FERRETDB_BACKEND != postgresql ]] || echo "postgres $PG_PORT"
    echo "ferretdb $MONGO_PORT"
  fi
  [[ -n ${REDIS_EXTERNAL:-} ]] || echo "redis $REDIS_PORT"
  local name port cmd env
  while read -r name port cmd env; do
    [[ ! -x "$ROOT/.venv/bin/$cmd" ]] || echo "$name $port"
  done < <(service_table)
  echo "gateway $GATEWAY_PORT"
  echo "prometheus $PROMETHEUS_PORT"
  echo "supervisor -"
}

# start_part NAME: the one place that knows how each part starts (up, the supervisor, tests).
start_part() {
  case $1 in
    kafka | postgres | ferretdb | redis) "$HERE/infra.sh" up "$1" ;;
    gateway | prometheus) "$HERE/$1.sh" up ;;
    supervisor) start_bg supervisor env MM_RUN="$RUN" SUPERVISOR_METRICS_PORT="$SUPERVISOR_METRICS_PORT" "$PY" "$HERE/supervise.py" ;;
    *) apps_up "$1" ;;
  esac
}

wait_ready() {
  local name=$1 port=$2 path=$3 i
  for ((i = 0; i < 600; i++)); do
    if curl -fsS -m 5 -o /dev/null "http://127.0.0.1:$port$path" 2>/dev/null; then return 0; fi
    if ! running "$name"; then tail -n 40 "$LOGS/$name.log" >&2; die "$name exited while starting (log: $LOGS/$name.log)"; fi
    sleep 0.1
  done
  tail -n 40 "$LOGS/$name.log" >&2; die "$name not ready on port $port (log: $LOGS/$name.log)"
}

# apps_up [NAME...]: start the sandboxes and services (those named; all by default) that are
# not running, then wait until each is ready.
apps_up() {
  local name port cmd env only=" $* " key_var
  while read -r name port cmd env; do
    [[ $# -eq 0 || $only == *" $name "* ]] || continue
    [[ -x "$ROOT/.venv/bin/$cmd" ]] || { log "skipping $name: $cmd not installed"; continue; }
    key_var="GATEWAY_KEY_${name^^}" && key_var=${key_var//-/_}
    # A service reaches Kafka as its own principal (the password make up generated for it).
    local kafka=()
    [[ $cmd != *-service ]] || kafka=(KAFKA_PASSWORD_FILE="$KAFKA_SECRETS_DIR/users/$cmd" KAFKA_CA_FILE="$KAFKA_SECRETS_DIR/ca.pem")
    # shellcheck disable=SC2086
    start_bg "$name" env $env "${kafka[@]}" ${!key_var:+GATEWAY_KEY=${!key_var}} "$ROOT/.venv/bin/$cmd"
  done < <(service_table)
  while read -r name port cmd env; do
    [[ $# -eq 0 || $only == *" $name "* ]] || continue
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
  log "Kafka principals, ACLs and topics (from contracts)"
  "$PY" -m servicekit.kafka.admin --bootstrap "$KAFKA_BOOTSTRAP" >/dev/null
  "$PY" -m servicekit.auth "$SECRETS" >/dev/null
  apps_up
  log "seeding demo data"
  local seed
  # Each installed service may have a `<name>-seed` command (idempotent demo data).
  for seed in $SERVICES; do
    seed="$seed-seed"
    [[ -x "$ROOT/.venv/bin/$seed" ]] || continue
    "$ROOT/.venv/bin/$seed" >>"$LOGS/seed.log" 2>&1 || { tail -20 "$LOGS/seed.log"; die "$seed failed"; }
  done
  log "indexing the store's tables for FerretDB's filters"
  "$HERE/infra.sh" tune
  "$HERE/gateway.sh" up
  "$HERE/prometheus.sh" up
  # Restarts what dies and a wedged store, as Kubernetes would (SUPERVISE=0: not started).
  if [[ ${SUPERVISE:-1} != 0 ]]; then start_part supervisor; fi
  where
}

down() {
  # The supervisor first, or it would start again what we stop.
  stop_bg supervisor
  "$HERE/prometheus.sh" down
  "$HERE/gateway.sh" down
  apps_down
  "$HERE/infra.sh" down
}

status() {
  "$HERE/infra.sh" status
  local name port rest
  while read -r name port rest; do status_line "$name" "$port"; done < <(service_table)
  "$HERE/gateway.sh" status
  "$HERE/prometheus.sh" status
  status_line supervisor
  if [[ -f "$LOGS/supervisor.log" ]]; then
    tail -n 3 "$LOGS/supervisor.log" | sed 's/^/      /'
  fi
  # The overview the dashboards show: readiness, lag from the broker, outboxes, dead letters.
  export SERVICES LAG_EXPORTER_PORT ACCOUNT_PORT VAS_PORT PAYMENT_PORT LOYALTY_PORT NOTIFY_PORT STORES_PORT
  [[ ! -x $PY ]] || "$PY" "$HERE/status.py" || log "the overview failed (deploy/local/status.py)"
}

where() {
  cat <<INFO

My MobiFone platform is up.
  Gateway (the app's API)   http://127.0.0.1:$GATEWAY_PORT/api/v1/...
INFO
  local name port cmd env
  while read -r name port cmd env; do
    [[ $name == *sandbox || $name == lag-exporter ]] && continue
    printf '  %-24s  http://127.0.0.1:%s/docs  (events: /asyncapi, /asyncapi.json)\n' "$name service" "$port"
  done < <(service_table)
  cat <<INFO
  Event catalogue           docs/asyncapi.json (make docs)
  SMS centre sandbox        http://127.0.0.1:$SMSC_HTTP_PORT/messages?to=84901234567 (SMPP on $SMSC_SMPP_PORT)
  Payment provider sandbox  http://127.0.0.1:$PAYPROV_PORT/
  Push sandbox (FCM, APNs)  http://127.0.0.1:$PUSH_SANDBOX_PORT/sandbox/stats
  Prometheus                http://127.0.0.1:$PROMETHEUS_PORT/
  Consumer lag (broker)     http://127.0.0.1:$LAG_EXPORTER_PORT/metrics   Overview: make status
  Kafka $KAFKA_BOOTSTRAP | MongoDB wire $MONGODB_URL | Redis $REDIS_URL
  Logs: $LOGS/   Supervisor: $LOGS/supervisor.log   Stop: make down
INFO
}

case ${1:-} in
  up) up ;;
  apps) shift; apps_up "$@" ;;
  down) down ;;
  parts) parts ;;
  start) start_part "${2:?name}" ;;
  # Stops it (STOP_GRACE seconds of TERM, then KILL) and starts it again.
  restart) stop_bg "${2:?name}"; start_part "$2" ;;
  restart-apps) apps_down; apps_up ;;
  stop-app) stop_bg "${2:?name}" ;;  # the supervisor leaves a part stopped this way alone
  start-app) shift; apps_up "$@" ;;  # starts whatever is not running
  status) status ;;
  logs) if [[ -n "${2:-}" ]]; then tail -n 100 -f "$LOGS/$2.log"; else tail -n 20 -f "$LOGS"/*.log; fi ;;
  where) where ;;
  *) die "usage: $0 up|down|status|logs [name]|where|parts|start NAME|restart NAME|stop-app NAME|start-app [NAME]|restart-apps" ;;
esac

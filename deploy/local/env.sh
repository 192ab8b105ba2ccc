# Shared settings for the local platform scripts. Every value can be overridden from the
# environment, so two platforms (or a CI run beside a developer's) can use other ports.
ROOT="${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
CACHE="${MM_CACHE:-$ROOT/.cache}"
# Run state (pids, logs, data) can live apart from the installed tools, so a second
# instance (a benchmark's PostgreSQL-backed FerretDB, say) runs beside the first.
STATE="${MM_STATE:-$CACHE}"
RUN="$STATE/run"          # pid files
LOGS="$STATE/logs"        # one log file a process
DATA="$STATE/data"        # Kafka log dirs, FerretDB/PostgreSQL data, Redis AOF, Prometheus TSDB
BIN="$CACHE/bin"

KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
FERRETDB_VERSION="${FERRETDB_VERSION:-v1.24.2}"
UV_VERSION="${UV_VERSION:-0.13.8}"

KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
MONGO_PORT="${MONGO_PORT:-27017}"
# FerretDB backend: postgresql (default) or sqlite. Chosen on bench/store_backends.py:
# PostgreSQL does conditional updates 6-12x faster and pushes filters down to SQL.
FERRETDB_BACKEND="${FERRETDB_BACKEND:-postgresql}"
PG_PORT="${PG_PORT:-5433}"
REDIS_PORT="${REDIS_PORT:-6379}"
GATEWAY_PORT="${GATEWAY_PORT:-8080}"
# Services (HTTP, 127.0.0.1) and sandboxes of external parties.
ACCOUNT_PORT="${ACCOUNT_PORT:-8101}"
VAS_PORT="${VAS_PORT:-8102}"
PAYMENT_PORT="${PAYMENT_PORT:-8103}"
LOYALTY_PORT="${LOYALTY_PORT:-8104}"
NOTIFY_PORT="${NOTIFY_PORT:-8105}"
STORES_PORT="${STORES_PORT:-8106}"
SMSC_SMPP_PORT="${SMSC_SMPP_PORT:-2775}"
SMSC_HTTP_PORT="${SMSC_HTTP_PORT:-8191}"
PAYPROV_PORT="${PAYPROV_PORT:-8192}"
# Services that exist (the gateway routes and Prometheus scrapes only these).
SERVICES="${SERVICES:-account payment}"
PROMETHEUS_PORT="${PROMETHEUS_PORT:-9090}"

# Real MongoDB / Kafka / Redis elsewhere: set these and the local ones are not started.
export KAFKA_BOOTSTRAP="${KAFKA_BOOTSTRAP:-127.0.0.1:$KAFKA_PORT}"
if [[ -z "${MM_ENV_LOADED:-}" ]]; then  # decided once, by the user's environment
  export MM_ENV_LOADED=1
  export MONGODB_URL_EXTERNAL="${MONGODB_URL:-}"
fi
export MONGODB_URL="${MONGODB_URL:-mongodb://127.0.0.1:$MONGO_PORT/}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:$REDIS_PORT/0}"

export UV_CACHE_DIR="${UV_CACHE_DIR:-$CACHE/uv}"
UV="$CACHE/tools/bin/uv"
PY="$ROOT/.venv/bin/python"

mkdir -p "$RUN" "$LOGS" "$DATA" "$BIN"

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31mxx\033[0m %s\n' "$*" >&2; exit 1; }

# port_open HOST PORT: true when something accepts TCP connections there.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# wait_port NAME PORT SECONDS: wait until the port answers, or show the log and fail.
# One line of `make status`: the process (by pid file) and its port.
status_line() {
  local name=$1 port=$2 state="stopped"
  running "$name" && state="running (pid $(cat "$RUN/$name.pid"))"
  port_open 127.0.0.1 "$port" && state="$state, port $port open" || state="$state, port $port closed"
  printf '  %-12s %s\n' "$name" "$state"
}

wait_port() {
  local name=$1 port=$2 secs=${3:-60} i
  for ((i = 0; i < secs * 10; i++)); do
    port_open 127.0.0.1 "$port" && return 0
    if [[ -f "$RUN/$name.pid" ]] && ! kill -0 "$(cat "$RUN/$name.pid")" 2>/dev/null; then
      tail -n 40 "$LOGS/$name.log" >&2 || true
      die "$name exited while starting (log: $LOGS/$name.log)"
    fi
    sleep 0.1
  done
  tail -n 40 "$LOGS/$name.log" >&2 || true
  die "$name did not open port $port within ${secs}s (log: $LOGS/$name.log)"
}

running() { [[ -f "$RUN/$1.pid" ]] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

# start_bg NAME CMD...: start a long-running process with its own log and pid file.
start_bg() {
  local name=$1; shift
  if running "$name"; then log "$name already running (pid $(cat "$RUN/$name.pid"))"; return 0; fi
  log "starting $name"
  setsid nohup "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
}

# stop_bg NAME: TERM the process group, then KILL what is left after 15 s.
stop_bg() {
  local name=$1 pid i
  [[ -f "$RUN/$name.pid" ]] || return 0
  pid=$(cat "$RUN/$name.pid")
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $name"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$RUN/$name.pid"
}

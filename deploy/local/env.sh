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
CHECKOV_VERSION="${CHECKOV_VERSION:-3.3.30}"

KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
# The fault drill (make drill): a second broker listener on KAFKA_PROXIED_PORT that advertises
# the broker at KAFKA_PROXY_PORT, where Toxiproxy forwards to it. Empty: the port the drill
# asked for before (kept in Kafka's data directory until make clean), else no such listener.
KAFKA_PROXIED_PORT="${KAFKA_PROXIED_PORT:-}"
KAFKA_PROXY_PORT="${KAFKA_PROXY_PORT:-19092}"
TOXIPROXY_VERSION="${TOXIPROXY_VERSION:-v2.5.0}"
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
PUSH_SANDBOX_PORT="${PUSH_SANDBOX_PORT:-8193}"  # FCM HTTP v1 + APNs (HTTP/2 cleartext)
# Consumer lag read from the broker (tools/lag-exporter), scraped by Prometheus.
LAG_EXPORTER_PORT="${LAG_EXPORTER_PORT:-8109}"
# Services that exist (the gateway routes and Prometheus scrapes only these).
SERVICES="${SERVICES:-account payment vas loyalty notify stores}"
PROMETHEUS_PORT="${PROMETHEUS_PORT:-9090}"
# The supervisor's own metrics (restarts, store probes), scraped by the local Prometheus.
SUPERVISOR_METRICS_PORT="${SUPERVISOR_METRICS_PORT:-9099}"

# Real MongoDB / Kafka / Redis elsewhere: set these and the local ones are not started.
export KAFKA_BOOTSTRAP="${KAFKA_BOOTSTRAP:-127.0.0.1:$KAFKA_PORT}"
# The broker's CA and every principal's password (servicekit.kafka.credentials, made by make up).
export KAFKA_SECRETS_DIR="${KAFKA_SECRETS_DIR:-$STATE/secrets/kafka}"
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

# --- Processes -----------------------------------------------------------------------------------
# Each part of the platform is one process started by start_bg: $RUN/NAME.pid holds its pid, its
# output goes to $LOGS/NAME.log. A pid file whose process is gone means the part crashed (the
# supervisor starts it again); no pid file means it was never started or was stopped on purpose
# (stop_bg removes the file). Starting and stopping a part holds $RUN/NAME.lock, so `make up`,
# `make down`, tests and the supervisor never race on one part.

# pid_state NAME: what the process named by $RUN/NAME.pid is doing:
#   none   no pid file
#   gone   exited, or a zombie (state Z/X in /proc: `kill -0` still succeeds on a zombie, and a
#          SIGKILLed process stays one until PID 1 reaps it, about a second here), or its pid now
#          names another process (its start time differs from the one in $RUN/NAME.start)
#   alive  otherwise
pid_state() {
  local pid fields
  [[ -f "$RUN/$1.pid" ]] || { echo none; return 0; }
  pid=$(<"$RUN/$1.pid")
  if ! proc_fields "$pid" || [[ ${fields[0]} == [ZX] ]] || recycled "$1" "$pid"; then
    echo gone
  else
    echo alive
  fi
}

# proc_fields PID: the caller's `fields` array := the fields of /proc/PID/stat after
# "(command) " (state, ppid, pgrp, ..., starttime at [19]); fails when there is no such process.
proc_fields() {
  local line
  [[ $1 =~ ^[0-9]+$ ]] && line=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  read -ra fields <<<"${line##*) }"
}

# recycled NAME PID: PID is a process, but not the one start_bg started as NAME (start_bg
# records its start time, in clock ticks since boot, in $RUN/NAME.start).
recycled() {
  local fields
  [[ -f "$RUN/$1.start" ]] && proc_fields "$2" && [[ ${fields[19]} != "$(<"$RUN/$1.start")" ]]
}

running() { [[ $(pid_state "$1") == alive ]]; }

# part_state NAME [PORT]: up (alive and, when it has a port, the port open) | starting (alive,
# port still closed) | crashed (pid_state gone) | stopped (no pid file).
part_state() {
  case $(pid_state "$1") in
    none) echo stopped ;;
    gone) echo crashed ;;
    *) if [[ -z ${2:-} ]] || port_open 127.0.0.1 "$2"; then echo up; else echo starting; fi ;;
  esac
}

# One line of `make status`: the process (by pid file, /proc and its port).
status_line() {
  local name=$1 port=${2:-} state
  state=$(part_state "$name" "$port")
  case $state in
    up | starting) state="running (pid $(<"$RUN/$name.pid"))" ;;
    crashed) state="crashed (pid $(<"$RUN/$name.pid") gone; the supervisor or make up starts it)" ;;
  esac
  if [[ -n $port ]]; then
    port_open 127.0.0.1 "$port" && state="$state, port $port open" || state="$state, port $port closed"
  fi
  printf '  %-24s %s\n' "$name" "$state"
}

# wait_port NAME PORT SECONDS: wait until the port answers, or show the log and fail.
wait_port() {
  local name=$1 port=$2 secs=${3:-60} i
  for ((i = 0; i < secs * 10; i++)); do
    port_open 127.0.0.1 "$port" && return 0
    if [[ $(pid_state "$name") == gone ]]; then
      tail -n 40 "$LOGS/$name.log" >&2 || true
      die "$name exited while starting (log: $LOGS/$name.log)"
    fi
    sleep 0.1
  done
  tail -n 40 "$LOGS/$name.log" >&2 || true
  die "$name did not open port $port within ${secs}s (log: $LOGS/$name.log)"
}

# with_lock NAME CMD...: run CMD holding $RUN/NAME.lock on fd 9, unless this process tree holds
# it already (the supervisor sets MM_LOCK_HELD=NAME around a restart it has decided under it).
with_lock() {
  local name=$1 rc=0; shift
  if [[ ${MM_LOCK_HELD:-} == "$name" ]]; then "$@"; return; fi
  exec 9>>"$RUN/$name.lock"
  flock 9
  "$@" || rc=$?
  exec 9>&-
  return $rc
}

# kill_group NAME SIGNAL: signal the process group the part leads (it may have children: nginx
# workers, PostgreSQL backends, left running when the leader was SIGKILLed), unless its pid
# was recycled by another process. (Linux does not reuse a pid while it still names a group.)
kill_group() {
  local pid
  pid=$(<"$RUN/$1.pid")
  [[ $pid =~ ^[0-9]+$ ]] && ! recycled "$1" "$pid" || return 0
  kill "-$2" -- "-$pid" 2>/dev/null || kill "-$2" "$pid" 2>/dev/null || true
}

# start_bg NAME CMD...: start a long-running process with its own log and pid file, unless it
# runs already. What a crashed predecessor left in its process group is killed first.
start_bg() { with_lock "$1" _start_bg "$@"; }
_start_bg() {
  local name=$1 state; shift
  state=$(pid_state "$name")
  if [[ $state == alive ]]; then log "$name already running (pid $(<"$RUN/$name.pid"))"; return 0; fi
  if [[ $state == gone ]]; then
    kill_group "$name" KILL
    log "starting $name (it had crashed)"
  else
    log "starting $name"
  fi
  MM_LOCK_HELD='' setsid nohup "$@" >>"$LOGS/$name.log" 2>&1 </dev/null 9>&- &
  local pid=$! fields
  if proc_fields "$pid"; then echo "${fields[19]}" >"$RUN/$name.start"; else rm -f "$RUN/$name.start"; fi
  echo "$pid" >"$RUN/$name.pid.new"
  mv -f "$RUN/$name.pid.new" "$RUN/$name.pid"
}

# stop_bg NAME: TERM the process group, then KILL what is left after STOP_GRACE (15) seconds.
stop_bg() {
  [[ -f "$RUN/$1.pid" ]] || return 0
  with_lock "$1" _stop_bg "$1"
}
_stop_bg() {
  local name=$1 i
  [[ -f "$RUN/$name.pid" ]] || return 0
  if running "$name"; then
    log "stopping $name"
    kill_group "$name" TERM
    for ((i = 0; i < ${STOP_GRACE:-15} * 10; i++)); do running "$name" || break; sleep 0.1; done
  fi
  kill_group "$name" KILL  # whatever is left, of a live process or of a crashed one
  rm -f "$RUN/$name.pid" "$RUN/$name.start"
}

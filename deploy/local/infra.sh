#!/usr/bin/env bash
# Starts/stops the real infrastructure as local processes: Kafka (KRaft, one node),
# FerretDB (MongoDB wire protocol; SQLite or PostgreSQL backend), Redis.
# Usage: infra.sh up|down|status [kafka|ferretdb|postgres|redis]... | tune
set -euo pipefail
source "$(dirname "$0")/env.sh"

# The broker authenticates every client (SASL/SCRAM-SHA-512 over TLS) and authorises it by the
# ACLs `servicekit.kafka.admin` derives from contracts: no listener takes an anonymous client
# (servicekit/kafka/broker_config.py writes the configuration). Credentials and TLS material
# come from `servicekit.kafka.credentials` ($KAFKA_SECRETS_DIR); the storage is formatted with
# the SCRAM users admin and broker; the other users are added by the admin tool once it is up.
kafka_up() {
  if [[ -n "${KAFKA_EXTERNAL:-}" ]]; then log "using external Kafka at $KAFKA_BOOTSTRAP"; return; fi
  local dir="$CACHE/kafka-$KAFKA_VERSION" data="$DATA/kafka" conf="$DATA/kafka/server.properties"
  local s="$KAFKA_SECRETS_DIR" scram
  mkdir -p "$data"
  "$PY" -m servicekit.kafka.credentials "$s" >/dev/null
  # The fault drill's listener for a proxy, once asked for, stays for this data directory (until
  # make clean), so a broker the supervisor restarts keeps it.
  local proxied=() port_file="$data/proxied-port"
  if [[ -n $KAFKA_PROXIED_PORT ]]; then echo "$KAFKA_PROXIED_PORT" >"$port_file"
  elif [[ -f $port_file ]]; then KAFKA_PROXIED_PORT=$(<"$port_file"); fi
  [[ -z $KAFKA_PROXIED_PORT ]] || proxied=(--proxied-port "$KAFKA_PROXIED_PORT" --proxy-port "$KAFKA_PROXY_PORT")
  "$PY" -m servicekit.kafka.broker_config --secrets "$s" --log-dirs "$data/logs" --out "$conf" \
    --port "$KAFKA_PORT" --controller-port "$KAFKA_CONTROLLER_PORT" "${proxied[@]}"
  if [[ ! -f "$data/logs/meta.properties" ]]; then
    log "formatting Kafka storage (SCRAM users admin and broker)"
    mapfile -t scram < <("$PY" -m servicekit.kafka.broker_config --secrets "$s" --log-dirs - --format-args)
    java -cp "$dir/libs/*" kafka.tools.StorageTool format -c "$conf" \
      -t "$(java -cp "$dir/libs/*" kafka.tools.StorageTool random-uuid)" "${scram[@]}" >>"$LOGS/kafka.log" 2>&1
    sha256sum "$s/users/admin" | cut -c1-16 >"$data/credentials.id"
  elif [[ ! -f "$data/credentials.id" ]]; then
    die "Kafka's data in $data predates authentication on the bus (no SCRAM users): make clean, then make up"
  elif [[ $(sha256sum "$s/users/admin" | cut -c1-16) != $(<"$data/credentials.id") ]]; then
    die "Kafka's data in $data was formatted with other credentials than $s: make clean, then make up"
  fi
  start_bg kafka java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$ROOT/deploy/local/conf/kafka-log4j2.yaml" \
    -cp "$dir/libs/*" kafka.Kafka "$conf"
  wait_port kafka "$KAFKA_PORT" 90
}

# PostgreSQL refuses to run as root: as root, its commands run as the postgres user. setpriv
# execs, so the pid file names PostgreSQL itself (runuser stayed its parent: the pid file named
# runuser, and a PostgreSQL whose runuser was killed ran on unseen).
pg_bin() { dirname "$(readlink -f "$(command -v initdb || ls /usr/lib/postgresql/*/bin/initdb | tail -1)")"; }
AS_POSTGRES=(setpriv --reuid=postgres --regid=postgres --init-groups --)
as_postgres() {
  if [[ $(id -u) -eq 0 ]]; then (cd / && "${AS_POSTGRES[@]}" "$@"); else "$@"; fi
}

# PostgreSQL's data directory: $DATA/postgres, unless the postgres user cannot reach it (a
# checkout under /root, mode 700: "initdb: could not access directory"). Then it lives under
# PG_DATA_ROOT (the postgres user's home), in a directory named after $DATA so two checkouts never
# share one, and $DATA/postgres is a symlink to it. A directory there that the symlink no longer
# names is a leftover of a state dir wiped since (make clean): it starts afresh, as Kafka does.
postgres_data() {
  local here="$DATA/postgres" away
  if [[ -L $here ]]; then readlink "$here"; return; fi
  if [[ -f $here/PG_VERSION || $(id -u) -ne 0 ]] || as_postgres test -x "$DATA"; then
    echo "$here"; return
  fi
  away="${PG_DATA_ROOT:-$(getent passwd postgres | cut -d: -f6)/mymobifone}"
  away="$away/$(basename "$ROOT")-$(sha256sum <<<"$DATA" | cut -c1-12)"
  if [[ -e $away ]]; then log "removing stale PostgreSQL data in $away"; rm -rf "$away"; fi
  mkdir -p "$away" && chown postgres: "$away" "$(dirname "$away")" && chmod 700 "$away"
  rm -rf "$here" && ln -s "$away" "$here"
  log "PostgreSQL data in $away: the postgres user cannot enter $DATA"
  echo "$away"
}

# FerretDB sends prepared statements whose filter names the field as a parameter
# (_jsonb->$1 @> $2). A generic plan cannot match an expression index on (_jsonb->'_id'), so
# every lookup scans the table (6.5 ms at 20k documents, growing with it); planning each
# execution with its values lets the GIN indexes of ferretdb-pg-indexes.sql serve it (0.9 ms,
# flat). Measured in bench/store_backends.py (postgresql+gin).
postgres_up() {
  local pgdata pgbin i
  pgdata=$(postgres_data)
  pgbin=$(pg_bin)
  mkdir -p "$pgdata"; [[ $(id -u) -eq 0 ]] && chown postgres "$pgdata" "$LOGS"
  if [[ ! -f "$pgdata/PG_VERSION" ]]; then
    log "initialising PostgreSQL for FerretDB"
    as_postgres "$pgbin/initdb" -D "$pgdata" -U ferretdb --auth=trust >>"$LOGS/postgres.log" 2>&1 \
      || { tail -n 5 "$LOGS/postgres.log" >&2; die "initdb failed (log: $LOGS/postgres.log)"; }
  fi
  local run=("$pgbin/postgres" -D "$pgdata" -p "$PG_PORT" -k /tmp -c listen_addresses=127.0.0.1
             -c max_connections=250 -c shared_buffers=256MB -c plan_cache_mode=force_custom_plan)
  if [[ $(id -u) -eq 0 ]]; then run=("${AS_POSTGRES[@]}" "${run[@]}"); fi
  (cd / && start_bg postgres "${run[@]}")  # from /: the postgres user may not enter our directory
  wait_port postgres "$PG_PORT" 30
  # The port opens before recovery after an unclean stop ends ("the database system is
  # starting up"): wait until it accepts queries.
  for ((i = 0; i < 600; i++)); do
    "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && break
    sleep 0.1
  done
  [[ $(as_postgres "$pgbin/psql" -h 127.0.0.1 -p "$PG_PORT" -U ferretdb -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname='ferretdb'") == 1 ]] \
    || as_postgres "$pgbin/createdb" -h 127.0.0.1 -p "$PG_PORT" -U ferretdb ferretdb
}

# GIN indexes that let PostgreSQL serve FerretDB's filters (see the SQL file for why). The file
# goes on stdin: the postgres user may not be able to read the checkout.
ferretdb_tune() {
  [[ -z "$MONGODB_URL_EXTERNAL" && "$FERRETDB_BACKEND" == postgresql ]] || return 0
  as_postgres "$(pg_bin)/psql" -h 127.0.0.1 -p "$PG_PORT" -U ferretdb -d ferretdb -q -v ON_ERROR_STOP=1 \
    <"$ROOT/deploy/local/conf/ferretdb-pg-indexes.sql"
}

ferretdb_up() {
  if [[ -n "$MONGODB_URL_EXTERNAL" ]]; then log "using MongoDB at $MONGODB_URL_EXTERNAL"; return; fi
  local args=(--listen-addr="127.0.0.1:$MONGO_PORT" --telemetry=disable --log-level=warn
              --debug-addr="127.0.0.1:${FERRETDB_DEBUG_PORT:-8088}" --state-dir="$DATA/ferretdb-state")
  mkdir -p "$DATA/ferretdb-state"
  case $FERRETDB_BACKEND in
    sqlite) mkdir -p "$DATA/ferretdb-sqlite"
            args+=(--handler=sqlite --sqlite-url="file:$DATA/ferretdb-sqlite/") ;;
    postgresql) postgres_up
            # FerretDB 1.24 holds two pool connections per update statement while it runs and
            # deadlocks when the pool runs dry: give it far more than our writers can use.
            args+=(--handler=postgresql --postgresql-url="postgres://ferretdb@127.0.0.1:$PG_PORT/ferretdb?pool_max_conns=200") ;;
    *) die "FERRETDB_BACKEND must be sqlite or postgresql" ;;
  esac
  start_bg ferretdb "$BIN/ferretdb" "${args[@]}"
  wait_port ferretdb "$MONGO_PORT" 30
}

redis_up() {
  if [[ -n "${REDIS_EXTERNAL:-}" ]]; then log "using external Redis at $REDIS_URL"; return; fi
  mkdir -p "$DATA/redis"
  start_bg redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$DATA/redis" \
    --appendonly yes --appendfsync everysec --save "" --daemonize no
  wait_port redis "$REDIS_PORT" 20
}

cmd=${1:-}; shift || true
parts=("$@"); ((${#parts[@]})) || parts=(kafka ferretdb redis)
case $cmd in
  # postgres is started by ferretdb's up and stopped with it; `up postgres` starts it alone.
  up) for p in "${parts[@]}"; do "${p}_up"; done ;;
  tune) ferretdb_tune ;;
  down)
    for p in "${parts[@]}"; do
      stop_bg "$p"
      if [[ $p == ferretdb ]]; then stop_bg postgres; fi
    done ;;
  status)
    status_line kafka "$KAFKA_PORT"; status_line ferretdb "$MONGO_PORT"
    if [[ "$FERRETDB_BACKEND" == postgresql ]]; then
      status_line postgres "$PG_PORT"
      if [[ -L "$DATA/postgres" ]]; then printf '  %-24s %s\n' "" "data: $(readlink "$DATA/postgres")"; fi
    fi
    status_line redis "$REDIS_PORT" ;;
  *) die "usage: $0 up|down|status [kafka|ferretdb|postgres|redis]... | tune" ;;
esac

#!/usr/bin/env bash
# Prometheus as a local process, scraping every service in SERVICES, FerretDB, the sandboxes
# and itself, with the rules of deploy/prometheus/rules.
# Usage: prometheus.sh up|down|reload|status
#   up      render the config, `promtool check config` it, start Prometheus, wait for the port
#   reload  re-render, check, and ask the running Prometheus to reload (POST /-/reload)
set -euo pipefail
source "$(dirname "$0")/env.sh"

PROM_DIR="$RUN/prometheus"    # rendered prometheus.yml and rules/
PROM_DATA="$DATA/prometheus"  # TSDB

render_checked() {
  local dir=$1
  command -v promtool >/dev/null || die "promtool not found (install.sh system installs prometheus)"
  "$ROOT/deploy/prometheus/render.sh" "$dir"
  local out
  # Checks the rule files it names too.
  out=$(promtool check config "$dir/prometheus.yml" 2>&1) \
    || { printf '%s\n' "$out" >&2; die "the rendered Prometheus config in $dir is invalid"; }
}

prometheus_up() {
  command -v prometheus >/dev/null || die "prometheus not found (install.sh system installs it)"
  if running prometheus; then log "prometheus already running (pid $(cat "$RUN/prometheus.pid"))"; return 0; fi
  render_checked "$PROM_DIR"
  mkdir -p "$PROM_DATA"
  start_bg prometheus prometheus \
    --config.file "$PROM_DIR/prometheus.yml" \
    --storage.tsdb.path "$PROM_DATA" \
    --storage.tsdb.retention.time "${PROMETHEUS_RETENTION:-7d}" \
    --web.listen-address "127.0.0.1:$PROMETHEUS_PORT" \
    --web.enable-lifecycle
  wait_port prometheus "$PROMETHEUS_PORT" 60
  log "prometheus on http://127.0.0.1:$PROMETHEUS_PORT (services: $SERVICES)"
}

prometheus_reload() {
  running prometheus || die "prometheus is not running"
  render_checked "$PROM_DIR"
  curl -fsS -X POST "http://127.0.0.1:$PROMETHEUS_PORT/-/reload" >/dev/null || die "reload refused"
  log "prometheus reloaded"
}

case ${1:-} in
  up) prometheus_up ;;
  down) stop_bg prometheus ;;
  reload) prometheus_reload ;;
  status) status_line prometheus "$PROMETHEUS_PORT" ;;
  *) die "usage: $0 up|down|reload|status" ;;
esac

#!/usr/bin/env bash
# The API gateway (nginx) as a local process, run as the current user.
# Usage: gateway.sh up|down|reload|reopen|status|render
#   up      render the config, `nginx -t` it, start nginx (daemon off) and wait for the port
#   reload  re-render into a staging dir, test it, swap it in and HUP nginx (old config
#           stays in place and running when the new one is invalid)
#   down    graceful stop (QUIT: finish in-flight requests), then TERM/KILL after 15 s
#   reopen  reopen the log files (after logrotate moved them: USR1)
#   render  render and test only (prints the config dir)
# Settings: deploy/local/env.sh (GATEWAY_PORT, SERVICES, *_PORT) and the gateway's own
# variables listed in deploy/gateway/render.py (CARRIER_PROXY_CIDRS, GATEWAY_KEY_<SERVICE>, ...).
set -euo pipefail
source "$(dirname "$0")/env.sh"

NGINX="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"
GW_DIR="$RUN/nginx"      # pid file, temp dirs and the rendered config
CONF="$GW_DIR/conf"

render_to() {
  local dir=$1
  rm -rf "$dir"
  mkdir -p "$GW_DIR/temp"
  GATEWAY_RUN_DIR="$GW_DIR" "$ROOT/deploy/gateway/render.sh" "$dir"
  "$NGINX" -q -t -p "$dir/" -c "$dir/nginx.conf" -e stderr \
    || die "the rendered gateway config in $dir is invalid"
}

gateway_up() {
  [[ -x "$NGINX" ]] || die "nginx not found (install.sh system installs it)"
  if running gateway; then log "gateway already running (pid $(cat "$RUN/gateway.pid"))"; return 0; fi
  render_to "$CONF"
  start_bg gateway "$NGINX" -p "$CONF/" -c "$CONF/nginx.conf" -e stderr
  wait_port gateway "$GATEWAY_PORT" 20
  log "gateway on http://127.0.0.1:$GATEWAY_PORT (services: $SERVICES)"
}

gateway_reload() {
  running gateway || die "gateway is not running"
  render_to "$CONF.new"
  rm -rf "$CONF.old"
  mv "$CONF" "$CONF.old"
  mv "$CONF.new" "$CONF"   # its paths are absolute or relative to its own dir: same test
  kill -HUP "$(cat "$RUN/gateway.pid")"
  log "gateway reloaded (services: $SERVICES)"
}

gateway_down() {
  local pid i
  if running gateway; then
    pid=$(cat "$RUN/gateway.pid")
    log "stopping gateway (graceful)"
    kill -QUIT "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do running gateway || break; sleep 0.1; done
  fi
  stop_bg gateway
}

case ${1:-} in
  up) gateway_up ;;
  down) gateway_down ;;
  reload) gateway_reload ;;
  reopen) running gateway || die "gateway is not running"; kill -USR1 "$(cat "$RUN/gateway.pid")" ;;
  status) status_line gateway "$GATEWAY_PORT" ;;
  render) render_to "$CONF.check" && echo "$CONF.check" ;;
  *) die "usage: $0 up|down|reload|reopen|status|render" ;;
esac

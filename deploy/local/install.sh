#!/usr/bin/env bash
# Installs everything the local platform needs into the git-ignored cache (.cache/).
# Idempotent: each step checks for its result first, so a second run costs seconds.
# Usage: install.sh [python|kafka|ferretdb|system|helm|checkov|toxiproxy|all]...
set -euo pipefail
source "$(dirname "$0")/env.sh"

install_python() {
  if [[ ! -x "$UV" ]] || [[ "$("$UV" --version | awk '{print $2}')" != "$UV_VERSION" ]]; then
    log "installing uv $UV_VERSION"
    python3 -m venv "$CACHE/tools"
    "$CACHE/tools/bin/pip" install -q "uv==$UV_VERSION"
  fi
  (cd "$ROOT" && "$UV" sync --frozen --quiet)
}

install_kafka() {
  local dir="$CACHE/kafka-$KAFKA_VERSION"
  [[ -f "$dir/.complete" ]] && return 0
  log "installing Apache Kafka $KAFKA_VERSION jars from Maven Central"
  mkdir -p "$dir"
  cat >"$dir/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.mymobifone</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>2.24.3</version></dependency>
  </dependencies>
</project>
POM
  (cd "$dir" && mvn -q -B -Dmaven.repo.local="$CACHE/m2" dependency:copy-dependencies \
      -DoutputDirectory=libs -DincludeScope=runtime)
  touch "$dir/.complete"
}

install_ferretdb() {
  # Not `--version | grep -q`: grep leaves at the first line, and under pipefail the SIGPIPE of
  # the rest made this fail now and then, rebuilding FerretDB under the running platform.
  # `version: v1.24.2` (lower case in the builds the Go module proxy gives): match either case.
  [[ -x "$BIN/ferretdb" && $("$BIN/ferretdb" --version 2>/dev/null) == *[Vv]"ersion: $FERRETDB_VERSION"* ]] && return 0
  log "building FerretDB $FERRETDB_VERSION (go module proxy)"
  export GOPATH="$CACHE/go" GOFLAGS=-buildvcs=false GOMODCACHE="$CACHE/go/pkg/mod"
  local src tmp
  src=$(go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  # The module zip lacks build/version/version.txt (made by FerretDB's own release task),
  # and the binary refuses to start without it: build from a copy that has it.
  tmp=$(mktemp -d)
  cp -r "$src/." "$tmp/" && chmod -R u+w "$tmp"
  echo "$FERRETDB_VERSION" >"$tmp/build/version/version.txt"
  (cd "$tmp" && go build -trimpath -o "$BIN/ferretdb" ./cmd/ferretdb)
  rm -rf "$tmp"
}

install_helm() {
  [[ -x "$BIN/helm" ]] && return 0
  log "building helm (go module proxy)"
  # Helm's release builds stamp the Kubernetes version it assumes without a cluster (helm
  # template, lint); a plain `go install` leaves v1.20, which the chart's kubeVersion refuses.
  local k8s="-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=31"
  k8s+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=31"
  GOPATH="$CACHE/go" GOBIN="$BIN" GOFLAGS=-buildvcs=false go install -ldflags "$k8s" "helm.sh/helm/v3/cmd/helm@${HELM_VERSION:-v3.19.0}"
}

# checkov (static analysis of the chart's manifests, tests/deploy/test_helm_checks.py): a tool of
# its own, in its own environment under .cache/checkov (its dependency tree is large and pins
# versions the workspace does not need), pinned like the rest.
install_checkov() {
  local bin="$CACHE/checkov/bin/checkov"
  [[ -x "$bin" && "$("$bin" --version 2>/dev/null)" == "$CHECKOV_VERSION" ]] && return 0
  log "installing checkov $CHECKOV_VERSION (PyPI, its own environment)"
  UV_TOOL_DIR="$CACHE/checkov/tools" UV_TOOL_BIN_DIR="$CACHE/checkov/bin" \
    "$UV" tool install --force --python 3.11 "checkov==$CHECKOV_VERSION" >/dev/null
}

# Toxiproxy (a fault-injecting TCP proxy with an HTTP API): the fault drill, make drill.
install_toxiproxy() {
  # Built by go install it reports version "git": the module version is in the build info.
  [[ -x "$BIN/toxiproxy-server" && $(go version -m "$BIN/toxiproxy-server" 2>/dev/null) == *"toxiproxy/v2"*"$TOXIPROXY_VERSION"* ]] && return 0
  log "building toxiproxy $TOXIPROXY_VERSION (go module proxy)"
  GOPATH="$CACHE/go" GOBIN="$BIN" GOFLAGS=-buildvcs=false \
    go install "github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION"
  mv -f "$BIN/server" "$BIN/toxiproxy-server"
}

apt_install() {
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  ((${#missing[@]})) || return 0
  command -v apt-get >/dev/null || die "need Debian packages ${missing[*]} (no apt-get here)"
  log "installing Debian packages: ${missing[*]}"
  local sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_system() {
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
  command -v mvn >/dev/null || apt_install maven
  command -v go >/dev/null || apt_install golang-go
  # libnginx-mod-http-js (njs): the gateway counts X-MSISDN headers with it (duplicate_msisdn).
  local pkgs=(redis-server nginx libnginx-mod-http-js prometheus wrk jq)
  [[ "$FERRETDB_BACKEND" == postgresql ]] && pkgs+=(postgresql)
  apt_install "${pkgs[@]}"
}

steps=("$@"); ((${#steps[@]})) || steps=(all)
for step in "${steps[@]}"; do
  case $step in
    python) install_python ;;
    kafka) install_kafka ;;
    ferretdb) install_ferretdb ;;
    system) install_system ;;
    helm) install_helm ;;
    checkov) install_checkov ;;
    toxiproxy) install_toxiproxy ;;
    all) install_system; install_python; install_kafka; install_ferretdb; install_helm; install_checkov; install_toxiproxy ;;
    *) die "unknown install step: $step" ;;
  esac
done

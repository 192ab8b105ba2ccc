#!/usr/bin/env bash
# FerretDB on PostgreSQL (the platform's) against FerretDB on SQLite started beside it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../deploy/local/env.sh"
main=$FERRETDB_BACKEND main_url=$MONGODB_URL
other=$([[ $main == postgresql ]] && echo sqlite || echo postgresql)
export MM_STATE="$CACHE/bench-$other" MONGO_PORT=27018 FERRETDB_DEBUG_PORT=8089 FERRETDB_BACKEND=$other PG_PORT=5434
"$here/../deploy/local/infra.sh" up ferretdb
trap '"$here/../deploy/local/infra.sh" down ferretdb' EXIT
"$PY" "$here/store_backends.py" --url "$main=$main_url" --url "$other=mongodb://127.0.0.1:27018/"

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
tuned=()
if [[ $main == postgresql && -z "$MONGODB_URL_EXTERNAL" ]]; then
  # The same server again, with the GIN indexes the platform adds (deploy/local/conf/ferretdb-pg-indexes.sql).
  tuned=(--url "postgresql+gin=$main_url" --tune "postgresql+gin=env -u MM_STATE -u MONGO_PORT -u FERRETDB_BACKEND -u PG_PORT -u FERRETDB_DEBUG_PORT -u MM_ENV_LOADED -u MONGODB_URL -u MONGODB_URL_EXTERNAL $here/../deploy/local/infra.sh tune")
fi
"$PY" "$here/store_backends.py" --url "$main=$main_url" "${tuned[@]}" --url "$other=mongodb://127.0.0.1:27018/"

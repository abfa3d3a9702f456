#!/usr/bin/env bash
# The README's DuckDB quickstart: builds the runtime with DuckDB linked in (the pinned
# prebuilt libduckdb from scripts/libduckdb.sh), starts the bundled demo API on a free
# loopback port, loads every stream of connectors/orders.yaml into
# output/orders.duckdb, queries it with `runtime query`, and stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."

DUCKDB_LIB_DIR="$(./scripts/libduckdb.sh)"
export DUCKDB_LIB_DIR
cargo build --quiet --locked -p demo-api
cargo build --quiet --locked -p runtime-cli --features duckdb-linked
bin=./target/debug

log=$(mktemp)
"$bin/demo-api" --listen 127.0.0.1:0 >"$log" 2>/dev/null &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -f "$log"' EXIT

url=""
for _ in $(seq 1 100); do
  url=$(grep -m1 -o 'http://[^ ]*' "$log" || true)
  [ -n "$url" ] && break
  sleep 0.1
done
if [ -z "$url" ]; then
  echo "error: the demo API did not start" >&2
  exit 1
fi
echo "demo API at $url"

db=output/orders.duckdb
rm -f "$db" "$db.wal"
ORDERS_API_KEY=demo-token "$bin/runtime" sync connectors/orders.yaml --set "base_url=$url" \
  --to "duckdb:$db"
# Twice: the incremental streams merge by key, so a rerun adds no duplicate.
ORDERS_API_KEY=demo-token "$bin/runtime" sync connectors/orders.yaml --set "base_url=$url" \
  --to "duckdb:$db" >/dev/null

echo
echo "== rows per table in $db:"
"$bin/runtime" query "duckdb:$db" \
  "SELECT table_name, estimated_size FROM duckdb_tables() ORDER BY table_name"
echo
echo "== orders by status:"
"$bin/runtime" query "duckdb:$db" \
  "SELECT status, count(*) AS orders, round(sum(total), 2) AS total FROM orders GROUP BY status ORDER BY status"
dupes=$("$bin/runtime" query "duckdb:$db" "SELECT count(*) - count(DISTINCT id) FROM orders" | tail -n 1)
if [ "$dupes" != "0" ]; then
  echo "error: $dupes duplicate orders after the rerun" >&2
  exit 1
fi

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

# shellcheck source=scripts/demo-api-start.sh
source scripts/demo-api-start.sh

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

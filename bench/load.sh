#!/usr/bin/env bash
# The load benchmark of issue 15, in one command: `runtime sync --to` into DuckDB and
# PostgreSQL for the benchmark's 1,000,000 records. See docs/performance.md.
#
#   bench/load.sh                         # both, 1,000,000 records, replace and merge, 3 runs each
#   bench/load.sh --records 100000 --runs 1 --only postgres
#   bench/load.sh --memory 200000,1000000,4000000 --only duckdb   # peak RSS as the load grows
#   LOAD_FEATURES=duckdb bench/load.sh       # DuckDB compiled in instead of linked (a long C++ build)
#
# Installs nginx and PostgreSQL with apt-get when missing, brings DuckDB's prebuilt
# library (scripts/libduckdb.sh), builds the runtime in release mode with DuckDB linked,
# then hands over to bench/load.py. Results: bench/results/load.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

need_tools
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
LOAD_FEATURES="${LOAD_FEATURES:-duckdb-linked}"
if [[ "$LOAD_FEATURES" == "duckdb-linked" ]]; then
  DUCKDB_LIB_DIR="$(./scripts/libduckdb.sh)"
  export DUCKDB_LIB_DIR
fi
cargo build --release -p runtime-cli --features "$LOAD_FEATURES"
trap stop_leftovers EXIT INT TERM
python3 bench/load.py "$@"

#!/usr/bin/env bash
# The load benchmark of issue 15, in one command: `runtime sync --to` into DuckDB and
# PostgreSQL for the benchmark's 1,000,000 records. See docs/performance.md.
#
#   bench/load.sh                         # 1,000,000 records, replace and merge, 3 runs each
#   bench/load.sh --records 100000 --runs 1 --only postgres
#   LOAD_FEATURES=duckdb bench/load.sh       # with DuckDB compiled in (a long C++ build)
#
# Installs nginx and PostgreSQL with apt-get when missing, builds the runtime in release
# mode, then hands over to bench/load.py. Results: bench/results/load.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

need_tools
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
cargo build --release -p runtime-cli ${LOAD_FEATURES:+--features "$LOAD_FEATURES"}
trap stop_leftovers EXIT INT TERM
python3 bench/load.py "$@"

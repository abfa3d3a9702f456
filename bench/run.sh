#!/usr/bin/env bash
# The benchmark of issue 8, in one command: `runtime sync` against a minimal hand-written
# client on cursor pages served by nginx on loopback. See docs/performance.md.
#
#   bench/run.sh                      # 100,000 and 1,000,000 records
#   bench/run.sh --records 100000     # one size (repeatable)
#   bench/run.sh --runs 7 --max-load 1.0
#
# Installs nginx with apt-get when it is missing, builds both clients in release mode,
# then hands over to bench/bench.py. Results: bench/results/latest.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

need_tools
cargo build --release -p runtime-cli -p bench-handwritten
trap stop_leftovers EXIT INT TERM
python3 bench/bench.py run "$@"

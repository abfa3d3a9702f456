#!/usr/bin/env bash
# The latency-bound benchmark of issue 13, in one command: `runtime sync` against a loopback
# API that answers after 50 ms and allows 40 requests per second, one page at a time and
# with pages fetched ahead. See docs/performance.md.
#
#   bench/latency.sh                            # 200,000 orders (about 3 minutes)
#   bench/latency.sh --records 20000            # a quick look
#   bench/latency.sh --sequential-records 20000 # the sequential run on fewer orders
#
# Builds the runtime in release mode (niced), then hands over to bench/latency.py.
# Results: bench/results/latency.md.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v python3 >/dev/null 2>&1 || { echo "error: the bench needs python3" >&2; exit 2; }
nice cargo build --release -q -p runtime-cli
python3 bench/latency.py run "$@"

#!/usr/bin/env bash
# Benchmark of `runtime serve`'s receiver: accepted deliveries per second and p50/p99
# latency on loopback, for a few sender counts. Not a test: it prints figures only.
#
#   bench/webhooks/run.sh                 # the sweep recorded in docs/webhooks.md
#   bench/webhooks/run.sh --senders 8     # one run, options passed to the example
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p webhook-receiver --example bench >&2
bin=target/release/examples/bench
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(df -T "${TMPDIR:-/tmp}" | awk 'NR==2 {print $2}') temp dir"
if [ $# -gt 0 ]; then
  exec "$bin" "$@"
fi
for senders in 1 8 32 128; do
  "$bin" --senders "$senders" --requests 20000
done
"$bin" --senders 32 --requests 20000 --duplicates 30

#!/usr/bin/env bash
# Builds everything, starts the bundled demo API on a free loopback port, syncs every
# stream of connectors/orders.yaml into output/orders, shows a few records and the
# summary, and stops the server. Works offline once the crates are fetched.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet --locked -p demo-api -p runtime-cli
bin=./target/debug

# shellcheck source=scripts/demo-api-start.sh
source scripts/demo-api-start.sh

out=output/orders
ORDERS_API_KEY=demo-token "$bin/runtime" sync connectors/orders.yaml --set "base_url=$url" --out "$out"

for stream in orders order_items products customers events; do
  echo
  echo "== $out/$stream.jsonl: $(wc -l <"$out/$stream.jsonl") records; the first 2:"
  head -n 2 "$out/$stream.jsonl"
done


#!/usr/bin/env bash
# `runtime serve` receiving real deliveries: starts the receiver for connectors/orders.yaml
# on a free loopback port, starts the demo API with webhooks pointed at it (20 order
# changes, each signed with HMAC-SHA256), waits for them, shows what was stored, stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet --locked -p demo-api -p runtime-cli
bin=./target/debug
secret=demo-webhook-secret
out=output/orders-webhooks
rm -rf "$out"

serve_log=$(mktemp)
demo_log=$(mktemp)
ORDERS_API_KEY=unused ORDERS_WEBHOOK_SECRET=$secret \
  "$bin/runtime" serve connectors/orders.yaml --listen 127.0.0.1:0 --out "$out" >"$serve_log" 2>&1 &
serve=$!
demo=""
cleanup() {
  [ -n "$demo" ] && kill "$demo" 2>/dev/null || true
  kill -TERM "$serve" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -f "$serve_log" "$demo_log"
}
trap cleanup EXIT

wait_for_url() {
  for _ in $(seq 1 100); do
    url=$(grep -m1 -o 'http://[^ ]*' "$1" || true)
    [ -n "$url" ] && { echo "$url"; return 0; }
    sleep 0.1
  done
  echo "error: $2 did not start" >&2
  cat "$1" >&2
  return 1
}
receiver=$(wait_for_url "$serve_log" "runtime serve")
echo "runtime serve at $receiver"

"$bin/demo-api" --listen 127.0.0.1:0 --webhook-url "$receiver/webhooks/orders" \
  --webhook-secret "$secret" --webhook-demo 20 >"$demo_log" 2>/dev/null &
demo=$!
wait_for_url "$demo_log" "the demo API" >/dev/null

for _ in $(seq 1 100); do
  [ -f "$out/orders.jsonl" ] && [ "$(wc -l <"$out/orders.jsonl")" -ge 20 ] && break
  sleep 0.1
done

echo
echo "== receiver log:"
grep -v '^listening' "$serve_log" | tail -n 5 || true
echo
echo "== $out/orders.jsonl: $(wc -l <"$out/orders.jsonl") events; the first 2:"
head -n 2 "$out/orders.jsonl"
if [ -f "$out/orders.latest.jsonl" ]; then
  echo
  echo "== $out/orders.latest.jsonl (newest version of each order): $(wc -l <"$out/orders.latest.jsonl") orders"
fi

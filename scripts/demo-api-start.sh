# Sourced by the quickstarts: starts the bundled demo API ($bin/demo-api) on a free
# loopback port, sets `url` to its address, and stops it when the calling script exits.
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

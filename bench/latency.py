#!/usr/bin/env python3
"""Latency-bound benchmark (issue 13): `runtime sync` against a loopback API that answers
every request after 50 ms and allows 40 requests per second.

The API holds 200,000 orders sorted by `updated_at`, filterable by an `updated_at` range
(`updated_after` inclusive, `updated_before` exclusive) and pageable by offset (pages of
100, the total in every page). More than 40 requests within any one second (a sliding
window) are answered 429 with `Retry-After: 1`, and counted.

Runs the same stream one page at a time (sequential) and with offset pages fetched ahead
(`pagination.concurrency`), prints wall time, the ideal (pages / 40 per second), their
ratio, 429s, the most requests the API held at once and the runtime's peak RSS, and writes
bench/results/latency.md. Standard library only (Python 3.9+).

    bench/latency.sh                          # the whole benchmark (builds release first)
    python3 bench/latency.py --records 20000  # a quick look
    python3 bench/latency.py --sequential-records 20000   # sequential on fewer records
    python3 bench/latency.py serve            # serve the API until Ctrl-C
"""

import argparse
import bisect
import glob
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from collections import deque
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
WORK = os.path.join(BENCH, ".work", "latency")
RESULTS = os.path.join(BENCH, "results")
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
RUNTIME = os.path.join(TARGET, "release", "runtime")
GNU_TIME = "/usr/bin/time"

LATENCY = 0.050
RPS = 40
PAGE = 100
# The runtime's declared ceiling: a little under the API's 40, for the network's jitter
# (a request sent on time can arrive a few milliseconds late, the next one on time).
DECLARED_RPS = 38
# 2024-01-01T00:00:00Z: order i is updated i minutes after it.
T0 = 1704067200
CONCURRENCY = 16


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- data


def make_orders(n, t0=None):
    """`n` orders as compact JSON (about 230 bytes each), and their `updated_at`, sorted."""
    t0 = T0 if t0 is None else t0
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    statuses = ("pending", "paid", "shipped", "delivered", "cancelled", "refunded")
    rows, stamps = [], []
    for i in range(n):
        updated = time.strftime(fmt, time.gmtime(t0 + i * 60))
        cents = (i * 7919) % 250000 + 500
        rows.append(
            f'{{"id":{i},"customer_id":{10000 + i % 89999},"external_id":"ext-{i:010d}",'
            f'"status":"{statuses[i % 6]}","total":{cents // 100}.{cents % 100:02d},'
            f'"currency":"EUR","updated_at":"{updated}","country":"DE","channel":"web",'
            f'"items_count":{1 + i % 8}}}'
        )
        stamps.append(updated)
    return rows, stamps


# ---------------------------------------------------------------- the API


class Api:
    """The orders, the budget's sliding window, and what the run did to them."""

    def __init__(self, rows, stamps):
        self.rows, self.stamps = rows, stamps
        self.lock = threading.Lock()
        self.window = deque()
        self.requests = 0
        self.refused = 0
        self.flying = 0
        self.most_flying = 0

    def reset(self):
        with self.lock:
            self.window.clear()
            self.requests = self.refused = self.flying = self.most_flying = 0

    def admit(self):
        """False (and counted) when this request would pass 40 within one second."""
        now = time.monotonic()
        with self.lock:
            self.requests += 1
            while self.window and now - self.window[0] >= 1.0:
                self.window.popleft()
            if len(self.window) >= RPS:
                self.refused += 1
                return False
            self.window.append(now)
            self.flying += 1
            self.most_flying = max(self.most_flying, self.flying)
            return True

    def done(self):
        with self.lock:
            self.flying -= 1

    def page(self, query):
        """The body for a query: offset, limit, updated_after, updated_before."""
        one = lambda k, d: query.get(k, [d])[0]
        lo = bisect.bisect_left(self.stamps, one("updated_after", ""))
        before = one("updated_before", "")
        hi = bisect.bisect_left(self.stamps, before) if before else len(self.stamps)
        hi = max(lo, hi)
        offset = max(0, int(one("offset", "0")))
        limit = min(1000, max(1, int(one("limit", str(PAGE)))))
        start = min(hi, lo + offset)
        rows = self.rows[start : min(hi, start + limit)]
        return f'{{"total":{hi - lo},"orders":[{",".join(rows)}]}}'.encode()


def handler_for(api):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def send(self, status, body, headers=()):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            url = urlparse(self.path)
            if url.path != "/orders":
                return self.send(404, b'{"error":"not found"}')
            if not api.admit():
                return self.send(429, b'{"error":"rate limited"}', [("Retry-After", "1")])
            try:
                time.sleep(LATENCY)
                try:
                    body = api.page(parse_qs(url.query))
                except ValueError:
                    return self.send(400, b'{"error":"bad query"}')
                self.send(200, body)
            finally:
                api.done()

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def start(api, port=0):
    srv = Server(("127.0.0.1", port), handler_for(api))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


# ---------------------------------------------------------------- runs


def spec(concurrency, windows=None):
    """The spec: pages fetched ahead with `concurrency` > 1; or, with `windows` (the range's
    end), the range cut into one-day windows fetched up to 64 at once, as many as the
    budget needs (the runtime sizes them from the declared rate and the latency)."""
    ahead = f"\n      concurrency: {concurrency}" if concurrency > 1 and not windows else ""
    inc = (
        "\n    incremental:\n      cursor_field: updated_at\n      param: updated_after\n"
        f'      end_param: updated_before\n      start: "2024-01-01T00:00:00Z"\n      end: "{windows}"\n'
        "      windows: { size: 1d, concurrency: 64 }"
        if windows
        else ""
    )
    return f"""# Written by bench/latency.py.
version: 1
name: bench_latency
config:
  base_url: {{ type: string }}
http:
  base_url: "{{{{ config.base_url }}}}"
  rate_limit: {{ requests_per_second: {DECLARED_RPS} }}
streams:
  orders:
    path: /orders
    primary_key: id
    records: $.orders[*]
    pagination:
      kind: offset
      limit: {PAGE}
      total: $.total{ahead}{inc}
"""


def run_once(api, url, name, records, concurrency, windows=False):
    """One `runtime sync` of the first `records` orders; returns its figures."""
    os.makedirs(WORK, exist_ok=True)
    path = os.path.join(WORK, f"{name}.yaml")
    before = api.stamps[records] if records < len(api.stamps) else ""
    # Where order `records` would be: the windows' half-open range ends there.
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(T0 + records * 60))
    with open(path, "w") as f:
        f.write(spec(concurrency, end if windows else None))
    out = os.path.join(WORK, f"out-{name}")
    shutil.rmtree(out, ignore_errors=True)
    # The first `records` orders: the range filter the API offers, through `params`.
    if before and not windows:
        with open(path, "a") as f:
            f.write(f'    params: {{ updated_before: "{before}" }}\n')
    api.reset()
    # Peak RSS from GNU time, which execs the runtime: the child of this process starts as
    # a fork of it (the API holds every record in memory), and its own ru_maxrss would
    # count those pages until the exec.
    rss_path = os.path.join(WORK, f"{name}.rss")
    cmd = [GNU_TIME, "-f", "%M", "-o", rss_path, RUNTIME, "sync", path, "--set", f"base_url={url}", "--out", out]
    err_path = os.path.join(WORK, f"{name}.stderr")
    with open(err_path, "w") as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, _ = os.wait4(proc.pid, 0)
        wall = time.monotonic() - t0
    code = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status >> 8
    if code != 0:
        with open(err_path) as f:
            log(f.read()[-2000:])
        raise SystemExit(f"{name}: runtime exited with {code}")
    files = glob.glob(os.path.join(out, "*.jsonl"))
    ids = []
    with open(files[0]) as f:
        for line in f:
            ids.append(json.loads(line)["id"])
    # Windows come out in the order they finish: every order once, in any order.
    if (sorted(ids) if windows else ids) != list(range(records)):
        raise SystemExit(f"{name}: the output is not orders 0..{records - 1} (once each, in order for pages)")
    # Windows page each day on its own (a short last page per day): the pages answered.
    pages = api.requests - api.refused if windows else -(-records // PAGE)
    ideal = pages / RPS
    return {
        "run": name,
        "records": records,
        "pages": pages,
        "requests": api.requests,
        "wall": wall,
        "ideal": ideal,
        "ratio": wall / ideal,
        "refused": api.refused,
        "most_flying": api.most_flying,
        "rss_mib": peak_kib(rss_path) / 1024,
    }


def peak_kib(path):
    """The peak RSS in KiB that GNU time wrote (its last line: the runtime's own)."""
    with open(path) as f:
        return int(f.read().split()[-1])


def table(rows):
    head = ["run", "records", "pages", "wall s", "ideal s", "ratio", "429s", "in flight", "peak RSS"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append(
            f"| {r['run']} | {r['records']:,} | {r['pages']:,} | {r['wall']:.1f} | "
            f"{r['ideal']:.1f} | {r['ratio']:.3f} | {r['refused']} | {r['most_flying']} | "
            f"{r['rss_mib']:.1f} MiB |"
        )
    return "\n".join(lines)


def machine():
    load = os.getloadavg()
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )


def cmd_run(args):
    if not os.access(GNU_TIME, os.X_OK):
        raise SystemExit(f"{GNU_TIME} is missing: install GNU time (apt-get install time)")
    if not os.access(RUNTIME, os.X_OK):
        raise SystemExit(f"no release build at {RUNTIME}: run bench/latency.sh (or cargo build --release -p runtime-cli)")
    log(f"generating {args.records:,} orders ...")
    rows, stamps = make_orders(args.records)
    api = Api(rows, stamps)
    srv = start(api)
    url = f"http://127.0.0.1:{srv.server_address[1]}"
    load_before = machine()
    results = []
    log(f"parallel pages (concurrency {CONCURRENCY}, {DECLARED_RPS} rps declared) ...")
    results.append(run_once(api, url, "parallel pages", args.records, CONCURRENCY))
    log(f"date windows (one day each, up to 64 at once, {DECLARED_RPS} rps declared) ...")
    results.append(run_once(api, url, "date windows", args.records, 1, windows=True))
    seq = args.records if args.sequential_records is None else min(args.sequential_records, args.records)
    if seq > 0:
        log(f"sequential ({seq:,} records) ...")
        results.append(run_once(api, url, "sequential", seq, 1))
    srv.shutdown()
    load_after = machine()
    text = table(results)
    print(text)
    par = results[0]
    win = results[1]
    ok = all(r["ratio"] <= 1.15 and r["refused"] == 0 for r in (par, win))
    verdict = (
        f"parallel pages: {par['ratio']:.3f}x the ideal, {par['refused']} 429s; "
        f"date windows: {win['ratio']:.3f}x, {win['refused']} 429s: "
        + ("both meet the targets (<= 1.15x, no 429)" if ok else "MISSES the targets (<= 1.15x, no 429)")
    )
    print(verdict)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    md = (
        f"# Latency-bound benchmark\n\n{stamp}; `bench/latency.sh`. The API answers each request "
        f"after {int(LATENCY * 1000)} ms and allows {RPS} requests per second (429 beyond); "
        f"pages of {PAGE}; the spec declares `requests_per_second: {DECLARED_RPS}`. "
        f"Ideal: pages / {RPS} per second.\n\n{text}\n\n{verdict}\n\n"
        f"Machine before: {load_before}\n\nMachine after: {load_after}\n"
    )
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "latency.md"), "w") as f:
        f.write(md)
    log(f"written: {os.path.join(RESULTS, 'latency.md')}")
    return 0 if ok else 1


def cmd_serve(args):
    rows, stamps = make_orders(args.records)
    api = Api(rows, stamps)
    srv = start(api, args.port)
    log(f"serving {args.records:,} orders on http://127.0.0.1:{srv.server_address[1]}/orders (Ctrl-C stops)")
    try:
        while True:
            time.sleep(5)
            log(f"{api.requests} requests, {api.refused} refused")
    except KeyboardInterrupt:
        srv.shutdown()
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", nargs="?", default="run", choices=["run", "serve"])
    p.add_argument("--records", type=int, default=200_000, help="orders the API holds (default 200,000)")
    p.add_argument(
        "--sequential-records",
        type=int,
        default=None,
        help="orders the sequential run reads (default: all; 0 skips it)",
    )
    p.add_argument("--port", type=int, default=0, help="serve: the port (default: any)")
    args = p.parse_args()
    if args.records < 1:
        raise SystemExit("--records must be at least 1")
    return cmd_run(args) if args.command == "run" else cmd_serve(args)


if __name__ == "__main__":
    sys.exit(main())

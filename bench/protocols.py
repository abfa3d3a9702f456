#!/usr/bin/env python3
"""Protocol output vs `runtime sync` on the benchmark's pages (bench/bench.py's data and
nginx): `runtime sync` writing orders.jsonl, `runtime airbyte read` and `runtime singer`
writing their messages to a file, alternating, wall time, CPU and peak RSS (GNU time).

  bench/protocols.py [--records 1000000] [--runs 3] [--data DIR]

Needs a release build (`cargo build --release -p runtime-cli`) and nginx. Records/s is
records over wall time. Standard library only.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def run(argv, stdout_path):
    """(wall s, peak RSS KiB, CPU s). The peak comes from GNU time: a forked Python
    child's ru_maxrss would start at Python's own size, since exec keeps it."""
    rss_file = os.path.join(bench.WORK, "protocols-rss.txt")
    with open(stdout_path, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen([bench.GNU_TIME, "-f", "%M", "-o", rss_file] + argv,
                                stdout=out, stderr=subprocess.DEVNULL, cwd=bench.WORK)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{argv[:3]} failed with {code}")
    peak = int(open(rss_file).read().split()[-1])
    return wall, peak, ru.ru_utime + ru.ru_stime


def count(path, needle):
    n = 0
    with open(path, "rb") as f:
        for line in f:
            if needle in line[:64]:
                n += 1
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--data", help="a folder of generated pages (default: generate under bench/.cache)")
    args = ap.parse_args()
    os.makedirs(bench.WORK, exist_ok=True)
    data = args.data or bench.generate(args.records)
    server = bench.Nginx(data)
    server.start()
    cfg = os.path.join(bench.WORK, "protocol-config.json")
    with open(cfg, "w") as f:
        json.dump({"base_url": server.url}, f)
    out = os.path.join(bench.WORK, "out-protocols")
    clients = {
        "sync": ([bench.RUNTIME, "sync", bench.SPEC, "--set", f"base_url={server.url}", "--out", out],
                 os.devnull, None),
        "airbyte read": ([bench.RUNTIME, "airbyte", "read", "--spec", bench.SPEC, "--config", cfg],
                         os.path.join(bench.WORK, "airbyte.jsonl"), b'"type":"RECORD"'),
        "singer": ([bench.RUNTIME, "singer", "--spec", bench.SPEC, "--config", cfg],
                   os.path.join(bench.WORK, "singer.jsonl"), b'"type":"RECORD"'),
    }
    results = {name: [] for name in clients}
    try:
        for i in range(args.runs + 1):
            for name, (argv, stdout_path, needle) in clients.items():
                shutil.rmtree(out, ignore_errors=True)
                os.sync()
                wall, rss, cpu = run(argv, stdout_path)
                got = count(stdout_path, needle) if needle else count(os.path.join(out, "orders.jsonl"), b'{')
                if got != args.records:
                    raise SystemExit(f"{name}: {got} records, expected {args.records}")
                if i > 0:  # the first round warms the caches
                    results[name].append((wall, rss, cpu))
                bench.log(f"  {'warm-up' if i == 0 else f'run {i}'} {name:<13} {wall:.3f}s  "
                          f"{args.records / wall:,.0f} rec/s  cpu {cpu:.3f}s  rss {rss / 1024:.1f} MiB")
    finally:
        server.stop()
    base = statistics.median(w for w, _, _ in results["sync"])
    print(f"| client | median wall s | records/s | vs sync | median CPU s | peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    for name, rs in results.items():
        wall = statistics.median(w for w, _, _ in rs)
        cpu = statistics.median(c for _, _, c in rs)
        rss = max(r for _, r, _ in rs) / 1024
        print(f"| {name} | {wall:.3f} | {args.records / wall:,.0f} | {base / wall * 100:.0f}% | {cpu:.3f} | {rss:.1f} |")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Benchmark driver: `runtime sync` against a minimal hand-written client (see run.sh).

Generates cursor pages of orders, serves them with nginx on loopback, runs both clients
several times each under a pseudo-terminal (so the runtime draws its progress lines as it
does for a user), measures wall time, CPU and peak RSS of each run, checks the outputs and
prints the table. Standard library only (Python 3.9+).

Subcommands:
  run      the benchmark (default); `--records N` to pick one size
  profile  callgrind of both clients on one size (profile.sh)
  serve    generate and serve the pages until Ctrl-C, for poking at by hand
"""

import argparse
import fcntl
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import termios
import threading
import time
import urllib.request
from datetime import datetime, timezone

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
CACHE = os.path.join(BENCH, ".cache")
WORK = os.path.join(BENCH, ".work")
RESULTS = os.path.join(BENCH, "results")
SPEC = os.path.join(BENCH, "orders.yaml")
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
RUNTIME = os.path.join(TARGET, "release", "runtime")
HANDWRITTEN = os.path.join(TARGET, "release", "bench-handwritten")
GNU_TIME = "/usr/bin/time"

PAGE = 1000
# Bump when the generated data changes, so cached pages are rebuilt.
DATA_VERSION = "orders-v1"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- data


def record(i, rnd, t0=1704067200):
    """One order, compact JSON, about 233 bytes."""
    cid = rnd.randrange(10000, 99999)
    cents = rnd.randrange(500, 250000)
    status = ("pending", "paid", "shipped", "delivered", "cancelled", "refunded")[rnd.randrange(6)]
    created = t0 + i * 29
    updated = created + rnd.randrange(0, 86400)
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    return (
        f'{{"id":{i},"customer_id":{cid},"external_id":"ext-{i:010d}","status":"{status}",'
        f'"total":{cents // 100}.{cents % 100:02d},"currency":"EUR",'
        f'"created_at":"{time.strftime(fmt, time.gmtime(created))}",'
        f'"updated_at":"{time.strftime(fmt, time.gmtime(updated))}",'
        f'"country":"DE","channel":"web","items_count":{rnd.randrange(1, 9)}}}'
    )


def page_name(p):
    """File name (without .json) of page p, counted from 1; page 1 is served without a cursor."""
    return "first" if p == 1 else f"page-{p:05d}"


def generate(n):
    """The pages for n records, generated once and reused."""
    folder = os.path.join(CACHE, f"orders-{n}")
    marker = os.path.join(folder, "complete")
    if os.path.exists(marker) and open(marker).read().strip() == DATA_VERSION:
        return folder
    log(f"generating {n:,} records in pages of {PAGE} under {folder} ...")
    started = time.perf_counter()
    shutil.rmtree(folder, ignore_errors=True)
    tmp = folder + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(tmp, "pages"))
    rnd = random.Random(n)
    pages = (n + PAGE - 1) // PAGE
    total = 0
    for p in range(1, pages + 1):
        first = (p - 1) * PAGE + 1
        last = min(p * PAGE, n)
        recs = ",".join(record(i, rnd) for i in range(first, last + 1))
        nxt = json.dumps(page_name(p + 1)) if p < pages else "null"
        body = f'{{"orders":[{recs}],"next_cursor":{nxt}}}'
        total += len(body)
        with open(os.path.join(tmp, "pages", page_name(p) + ".json"), "w") as f:
            f.write(body)
    with open(os.path.join(tmp, "complete"), "w") as f:
        f.write(DATA_VERSION + "\n")
    os.rename(tmp, folder)
    log(f"  {pages} pages, {total / 1e6:.1f} MB, {time.perf_counter() - started:.1f}s")
    return folder


# ---------------------------------------------------------------- server


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nginx:
    """nginx serving one data folder on loopback, with every file of its own under .work/."""

    def __init__(self, data):
        self.data = data
        self.home = os.path.join(WORK, "nginx")
        self.port = free_port()
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def config(self):
        h = self.home
        built = subprocess.run(["nginx", "-V"], capture_output=True, text=True).stderr
        temps = ["client_body_temp_path " + os.path.join(h, "tmp", "body") + ";"]
        for mod in ("proxy", "fastcgi", "uwsgi", "scgi"):
            if f"--without-http_{mod}_module" not in built:
                temps.append(f"{mod}_temp_path {os.path.join(h, 'tmp', mod)};")
        # As root nginx hands its workers to `nobody`; keep them as whoever runs the bench.
        user = "user root;" if os.geteuid() == 0 else ""
        return f"""# Written by bench/bench.py for one run; not meant to be edited.
{user}
worker_processes 1;
pid {os.path.join(h, "nginx.pid")};
error_log {os.path.join(h, "error.log")} warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    open_file_cache max=20000 inactive=120s;
    {" ".join(temps)}
    types {{ application/json json; }}
    default_type application/json;
    server {{
        listen 127.0.0.1:{self.port};
        root {self.data};
        location = /orders {{
            try_files /pages/$arg_cursor.json /pages/first.json =404;
        }}
    }}
}}
"""

    def start(self):
        os.makedirs(os.path.join(self.home, "tmp"), exist_ok=True)
        conf = os.path.join(self.home, "nginx.conf")
        with open(conf, "w") as f:
            f.write(self.config())
        err = os.path.join(self.home, "error.log")
        cmd = ["nginx", "-p", self.home, "-e", err, "-c", conf, "-g", "daemon off;"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.home, "stderr.log"), "w"))
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"nginx exited at start; see {self.home}/stderr.log and error.log:\n"
                                 + open(os.path.join(self.home, "stderr.log")).read())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            self.stop()
            raise SystemExit("nginx did not start listening within 10 s")
        self.check()

    def check(self):
        """The first two pages come back as the spec expects them."""
        with urllib.request.urlopen(self.url + "/orders?limit=1000") as r:
            first = json.load(r)
            ctype = r.headers.get("content-type", "")
        if "json" not in ctype or not first.get("orders"):
            raise SystemExit(f"nginx served something else for /orders: {ctype}")
        if first["next_cursor"]:
            with urllib.request.urlopen(f"{self.url}/orders?cursor={first['next_cursor']}&limit=1000") as r:
                second = json.load(r)
            if second["orders"][0]["id"] != first["orders"][-1]["id"] + 1:
                raise SystemExit("nginx served the wrong page for the second cursor")

    def cpu(self):
        """CPU seconds used so far by nginx's master and workers."""
        workers = [p for p in all_pids() if ppid(p) == self.proc.pid]
        return sum(proc_cpu(p) for p in [self.proc.pid] + workers)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def proc_stat(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def ppid(pid):
    s = proc_stat(pid)
    return int(s[1]) if s else -1


def proc_cpu(pid):
    s = proc_stat(pid)
    return (int(s[11]) + int(s[12])) / CLK_TCK if s else 0.0


def machine_busy():
    """CPU seconds the whole machine has spent busy since boot."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal
    return (v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)) / CLK_TCK


# ---------------------------------------------------------------- running


def run_on_pty(cmd, cwd=ROOT, env=None):
    """Runs cmd with stdin, stdout and stderr on a new pseudo-terminal, as a user at a
    terminal would; returns (wall s, rusage, peak RSS KiB, exit code, the terminal's last
    output)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    seen = bytearray()

    def drain():
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            seen.extend(chunk)
            del seen[:-16384]

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    # GNU time reports the peak RSS: a child forked from Python would carry Python's own
    # high-water mark through exec (Linux keeps it in the process's rusage), while time's
    # fork is tiny. CPU comes from wait4, which includes the children time waited for.
    rss_file = os.path.join(WORK, "time.out")
    if os.path.exists(rss_file):
        os.remove(rss_file)
    argv = [GNU_TIME, "-f", "%M", "-o", rss_file] + list(cmd)
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True)
    os.close(slave)
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join(5)
    os.close(master)
    peak_kib = 0
    try:
        last = open(rss_file).read().split()
        peak_kib = int(last[-1]) if last else 0
    except (OSError, ValueError):
        pass
    return wall, usage, peak_kib, proc.returncode, bytes(seen).decode("utf-8", "replace")


def check_output(path):
    """(lines, distinct ids, bytes) of a JSON-lines output."""
    ids = set()
    lines = 0
    with open(path, "rb") as f:
        for line in f:
            lines += 1
            # Every record starts with its id; anything else is parsed properly.
            if line.startswith(b'{"id":'):
                end = line.find(b",", 6)
                ids.add(int(line[6:end]))
            else:
                ids.add(json.loads(line)["id"])
    return lines, len(ids), os.path.getsize(path)


class Client:
    def __init__(self, name, argv, out):
        self.name = name
        self.argv = argv
        self.out = out


def clients(url):
    rt_out = os.path.join(WORK, "out-runtime")
    hw_out = os.path.join(WORK, "out-handwritten")
    return [
        Client("runtime sync", [RUNTIME, "sync", SPEC, "--set", f"base_url={url}", "--out", rt_out], rt_out),
        Client("hand-written", [HANDWRITTEN, url, hw_out], hw_out),
    ]


def wait_for_quiet(max_load, timeout=300):
    if max_load is None:
        return
    deadline = time.time() + timeout
    while os.getloadavg()[0] > max_load and time.time() < deadline:
        time.sleep(2)


def measure(client, n, server, max_load):
    shutil.rmtree(client.out, ignore_errors=True)
    os.sync()  # the previous run's dirty pages must not be flushed on this run's time
    wait_for_quiet(max_load)
    load = os.getloadavg()[0]
    busy0, srv0 = machine_busy(), server.cpu()
    wall, ru, peak_kib, code, screen = run_on_pty(client.argv)
    busy1, srv1 = machine_busy(), server.cpu()
    if code != 0:
        raise SystemExit(f"{client.name} failed (exit {code}); its last output:\n{screen}")
    with open(os.path.join(WORK, f"screen-{client.name.split()[0]}.txt"), "w") as f:
        f.write(screen)
    out = os.path.join(client.out, "orders.jsonl")
    lines, distinct, size = check_output(out)
    cpu = ru.ru_utime + ru.ru_stime
    server_cpu = srv1 - srv0
    return {
        "client": client.name,
        "records": n,
        "wall_s": wall,
        "user_s": ru.ru_utime,
        "sys_s": ru.ru_stime,
        "cpu_s": cpu,
        "peak_rss_kib": peak_kib,
        "output_bytes": size,
        "lines": lines,
        "distinct_ids": distinct,
        "ok": lines == n and distinct == n,
        "load1": load,
        "server_cpu_s": server_cpu,
        # Everything else on the machine during the run, in cores (other agents' builds).
        "others_cores": max(0.0, (busy1 - busy0) - cpu - server_cpu) / wall,
        "progress_drawn": "rec/s" in screen,
    }


def bench_size(n, runs, warmup, max_load, max_others, retries):
    data = generate(n)
    server = Nginx(data)
    server.start()
    try:
        log(f"\n== {n:,} records: nginx on {server.url}, {runs} runs each, alternating")
        cs = clients(server.url)
        for i in range(warmup):
            for c in cs:
                r = measure(c, n, server, None)
                log(f"  warm-up {c.name:<13} {r['wall_s']:.3f}s")
        results = []
        for i in range(runs):
            order = cs if i % 2 == 0 else cs[::-1]
            for c in order:
                for attempt in range(retries + 1):
                    r = measure(c, n, server, max_load)
                    busy = max_others is not None and r["others_cores"] > max_others
                    if not busy or attempt == retries:
                        break
                    log(f"  run {i + 1}/{runs} {c.name:<13} wall {r['wall_s']:.3f}s discarded: other processes "
                        f"used {r['others_cores']:.2f} cores (> {max_others}); again in 3 s")
                    time.sleep(3)
                r["discarded_before"] = attempt
                results.append(r)
                log(f"  run {i + 1}/{runs} {c.name:<13} wall {r['wall_s']:.3f}s  cpu {r['cpu_s']:.3f}s  "
                    f"rss {r['peak_rss_kib'] / 1024:.1f} MiB  lines {r['lines']:,}  ids {r['distinct_ids']:,}  "
                    f"{'ok' if r['ok'] else 'WRONG'}  load {r['load1']:.2f}  others {r['others_cores']:.2f} cores  "
                    f"nginx {r['server_cpu_s']:.3f}s")
                if not r["ok"]:
                    raise SystemExit(f"{c.name}: expected {n:,} lines and ids, got {r['lines']:,} lines "
                                     f"and {r['distinct_ids']:,} distinct ids in {c.out}")
        return results
    finally:
        server.stop()


# ---------------------------------------------------------------- report


def summarize(results):
    out = {}
    for name in ("runtime sync", "hand-written"):
        rs = [r for r in results if r["client"] == name]
        if not rs:
            continue
        n = rs[0]["records"]
        wall = statistics.median(r["wall_s"] for r in rs)
        out[name] = {
            "runs": len(rs),
            "wall": wall,
            "wall_min": min(r["wall_s"] for r in rs),
            "wall_max": max(r["wall_s"] for r in rs),
            "rps": n / wall,
            "mbps": statistics.median(r["output_bytes"] for r in rs) / 1e6 / wall,
            "cpu": statistics.median(r["cpu_s"] for r in rs),
            "rss": max(r["peak_rss_kib"] for r in rs) / 1024,
            "progress": all(r["progress_drawn"] for r in rs) if name == "runtime sync" else None,
        }
    return out


def table(n, results):
    s = summarize(results)
    loads = [r["load1"] for r in results]
    others = [r["others_cores"] for r in results]
    srv = statistics.median(r["server_cpu_s"] for r in results)
    redone = sum(r.get("discarded_before", 0) for r in results)
    lines = [
        f"### {n:,} records ({s['runtime sync']['runs']} runs each)",
        "",
        "| client | median wall s | min-max wall s | records/s | MB/s | CPU s | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, v in s.items():
        lines.append(f"| {name} | {v['wall']:.3f} | {v['wall_min']:.3f}-{v['wall_max']:.3f} | "
                     f"{v['rps']:,.0f} | {v['mbps']:.1f} | {v['cpu']:.3f} | {v['rss']:.1f} |")
    rt, hw = s["runtime sync"], s["hand-written"]
    lines.append(f"| **runtime / hand-written** | **{rt['wall'] / hw['wall']:.2f}x** | | | | "
                 f"{rt['cpu'] / hw['cpu']:.2f}x | **{rt['rss'] / hw['rss']:.2f}x** |")
    lines += [
        "",
        f"Load average (1 min) at the runs' starts: {min(loads):.2f}-{max(loads):.2f}; "
        f"CPU used by other processes during the runs: {min(others):.2f}-{max(others):.2f} cores; "
        f"nginx CPU per run (median): {srv:.3f} s. "
        f"Runs measured again because other processes were busy: {redone}. "
        f"Runtime progress lines drawn: {'yes' if rt['progress'] else 'NO'}. "
        f"Outputs checked: {n:,} lines and {n:,} distinct ids in every run.",
        "",
    ]
    return "\n".join(lines)


def targets(by_size):
    """The issue's targets, checked on what was measured."""
    out = []
    for n, results in sorted(by_size.items()):
        s = summarize(results)
        rt, hw = s["runtime sync"], s["hand-written"]
        ratio = rt["wall"] / hw["wall"]
        out.append(f"- {n:,}: wall ratio {ratio:.2f}x (target <= 1.00x): {'met' if ratio <= 1.0 else 'NOT met'}; "
                   f"peak RSS {rt['rss']:.1f} MiB (target <= 32): {'met' if rt['rss'] <= 32 else 'NOT met'}")
    if len(by_size) >= 2:
        lo, hi = min(by_size), max(by_size)
        a = summarize(by_size[lo])["runtime sync"]["rss"]
        b = summarize(by_size[hi])["runtime sync"]["rss"]
        growth = b / a - 1
        out.append(f"- peak RSS at {hi:,} vs {lo:,}: {growth * 100:+.1f}% (target within 10%): "
                   f"{'met' if abs(growth) <= 0.10 else 'NOT met'}")
    return "\n".join(out)


def machine():
    model = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    return f"{os.cpu_count()} CPUs ({model}), {mem} RAM, {platform.system()} {platform.release()}, {nginx}"


def git_rev():
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return rev + (" (with uncommitted changes)" if dirty else "") if rev else "unknown"
    except OSError:
        return "unknown"


def cmd_run(args):
    sizes = args.records or [100_000, 1_000_000]
    by_size = {}
    for n in sizes:
        runs = args.runs or (5 if n <= 200_000 else 3)
        by_size[n] = bench_size(n, runs, args.warmup, args.max_load, args.max_others, args.retries)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    doc = [
        "# Benchmark results (bench/run.sh)",
        "",
        f"{stamp}, commit {git_rev()}. Machine: {machine()}.",
        "",
        "Median over the runs; MB/s is output bytes over wall time; CPU is user+sys of the "
        "client process; peak RSS is the highest of the runs. Runtime with progress lines on "
        "(run on a pseudo-terminal).",
        "",
    ]
    for n, results in by_size.items():
        doc.append(table(n, results))
    doc += ["Targets (issue 8):", "", targets(by_size), ""]
    text = "\n".join(doc)
    print("\n" + text)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "latest.md"), "w") as f:
        f.write(text)
    with open(os.path.join(RESULTS, "latest.json"), "w") as f:
        json.dump({"when": stamp, "machine": machine(), "runs": [r for rs in by_size.values() for r in rs]},
                  f, indent=1)
    # The outputs were checked after each run; a million records is 236 MB per client.
    for c in clients(""):
        shutil.rmtree(c.out, ignore_errors=True)
    log(f"\nwritten: {os.path.relpath(os.path.join(RESULTS, 'latest.md'), ROOT)}")


# ---------------------------------------------------------------- profile


def cmd_profile(args):
    n = (args.records or [100_000])[0]
    data = generate(n)
    server = Nginx(data)
    server.start()
    os.makedirs(RESULTS, exist_ok=True)
    try:
        for c in clients(server.url):
            tag = "runtime" if c.name.startswith("runtime") else "handwritten"
            outfile = os.path.join(WORK, f"callgrind.{tag}.out")
            argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={outfile}"] + c.argv
            shutil.rmtree(c.out, ignore_errors=True)
            log(f"callgrind: {c.name}, {n:,} records ...")
            wall, _, _, code, screen = run_on_pty(argv)
            if code != 0:
                raise SystemExit(f"{c.name} under callgrind failed (exit {code}):\n{screen}")
            lines, distinct, _ = check_output(os.path.join(c.out, "orders.jsonl"))
            log(f"  {wall:.1f}s under callgrind, {lines:,} lines, {distinct:,} ids")
            report = (f"==== {c.name}, {n:,} records, callgrind (instructions executed; "
                      f"I/O waits do not count) ====\n" + annotate(outfile, args.top))
            path = os.path.join(RESULTS, f"profile-{tag}.txt")
            with open(path, "w") as f:
                f.write(report)
            print(report)
            log(f"written: {os.path.relpath(path, ROOT)} (full data: {os.path.relpath(outfile, ROOT)})")
    finally:
        server.stop()


# Frames every thread passes through (scheduler, thread start, std plumbing): they say
# nothing about where the work is, so the inclusive list leaves them out.
PLUMBING = ("tokio::", "std::", "core::", "alloc::", "<std::", "<core::", "<alloc::", "start_thread",
            "(below main)", "__libc", "main", "???", "0x")


def trim_annotate(text, top, inclusive):
    """The totals and the first `top` function lines of callgrind_annotate, with shorter
    paths; for the inclusive list, without the plumbing frames and inlined duplicates."""
    out, taken, seen = [], 0, set()
    for line in text.splitlines():
        if "PROGRAM TOTALS" in line:
            if not out:
                out.append(line.strip())
            continue
        m = re.match(r"^\s*([0-9,]+) \(\s*([0-9.]+)%\)\s+(\S.*)$", line)
        if not m:
            continue
        where = re.sub(r"/root/\.cargo/registry/src/[^/]+/|/rustc/[0-9a-f]+/", "", m.group(3))
        where = where.replace(ROOT + "/", "")
        where = re.sub(r"\s*\[[^\]]*\]$", "", where)
        func = where.split(":", 1)[1] if ":" in where else where
        if inclusive:
            if func.startswith(PLUMBING) or func in seen:
                continue
            seen.add(func)
        out.append(f"{m.group(1):>14} {m.group(2):>6}%  {where[:200]}")
        taken += 1
        if taken >= top:
            break
    return "\n".join(out) + "\n"


def annotate(outfile, top):
    """Inclusive and self tables of one callgrind output."""
    parts = []
    for title, inclusive in (("inclusive", True), ("self", False)):
        text = subprocess.run(["callgrind_annotate", f"--inclusive={'yes' if inclusive else 'no'}",
                               "--threshold=100", outfile], capture_output=True, text=True).stdout
        parts.append(f"-- top functions by {title} cost (instructions, Ir) --\n" + trim_annotate(text, top, inclusive))
    return "\n".join(parts)


# ---------------------------------------------------------------- serve


def cmd_serve(args):
    n = (args.records or [100_000])[0]
    server = Nginx(generate(n))
    server.start()
    print(f"serving {n:,} records at {server.url}/orders (Ctrl-C stops)")
    print(f"  {RUNTIME} sync {SPEC} --set base_url={server.url} --out {WORK}/out-runtime")
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", nargs="?", default="run", choices=["run", "profile", "serve"])
    ap.add_argument("--records", type=int, action="append",
                    help="records to pull (repeatable); default 100000 and 1000000")
    ap.add_argument("--runs", type=int, help="timed runs of each client (default 5 up to 200k records, else 3)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs of each client first (default 1)")
    ap.add_argument("--max-load", type=float,
                    help="before each run, wait (up to 5 min) until the 1-minute load average is below this")
    ap.add_argument("--max-others", type=float, default=0.5,
                    help="a run during which other processes used more than this many cores is measured "
                         "again (default 0.5; -1 keeps every run)")
    ap.add_argument("--retries", type=int, default=4, help="new attempts of a run disturbed by others (default 4)")
    ap.add_argument("--top", type=int, default=25, help="profile: functions listed (default 25)")
    args = ap.parse_args()
    if args.max_others is not None and args.max_others < 0:
        args.max_others = None
    for b in (RUNTIME, HANDWRITTEN):
        if not os.path.exists(b):
            raise SystemExit(f"{b} is missing: run bench/run.sh, which builds it")
    if not os.access(GNU_TIME, os.X_OK):
        raise SystemExit(f"{GNU_TIME} (GNU time) is missing: `apt-get install time`, or run bench/run.sh")
    # A SIGTERM or SIGHUP unwinds like Ctrl-C, so the finally blocks stop nginx.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(130))
    # Started in the background by a script, Python would ignore Ctrl-C; the bench must not.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.makedirs(WORK, exist_ok=True)
    {"run": cmd_run, "profile": cmd_profile, "serve": cmd_serve}[args.command](args)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Load benchmark: `runtime sync --to` into DuckDB and PostgreSQL (see load.sh).

Serves the benchmark's cursor pages with nginx on loopback (bench.py's data and server),
starts a PostgreSQL of its own (initdb in bench/.work/pg as the `postgres` user, on a free
port), and times `runtime sync bench/orders.yaml --to ...` into a fresh DuckDB file and a
fresh PostgreSQL schema: wall time, records/s, CPU, peak RSS of the runtime (the database
server's own memory is not the runtime's), and the row count afterwards. Standard library
only. Results: bench/results/load.md.
"""

import argparse
import glob
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

WORK = bench.WORK
PG_HOME = os.path.join(WORK, "pg")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def pg_bindir():
    try:
        d = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip()
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    except FileNotFoundError:
        pass
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    w = shutil.which("initdb")
    if w:
        return os.path.dirname(w)
    raise SystemExit("PostgreSQL server binaries not found: apt-get install -y postgresql")


class Postgres:
    """A PostgreSQL server of the bench's own, as the `postgres` user (initdb refuses root)."""

    def __init__(self):
        self.bin = pg_bindir()
        self.port = bench.free_port()

    def as_pg(self, *args):
        cmd = [os.path.join(self.bin, args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True)

    def start(self):
        self.stop()
        shutil.rmtree(PG_HOME, ignore_errors=True)
        os.makedirs(PG_HOME)
        if os.geteuid() == 0:
            shutil.chown(PG_HOME, "postgres", "postgres")
        data = os.path.join(PG_HOME, "data")
        self.as_pg("initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        # Durable settings (fsync on): the bench measures a real load.
        opts = f"-p {self.port} -k {PG_HOME} -c listen_addresses=127.0.0.1 -c max_wal_size=4GB"
        self.as_pg("pg_ctl", "-D", data, "-o", opts, "-l", os.path.join(PG_HOME, "log"), "-w", "start")

    def url(self, schema):
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres?schema={schema}"

    def sql(self, q):
        return subprocess.run(
            [os.path.join(self.bin, "psql"), "-X", "-A", "-t", "-h", "127.0.0.1", "-p", str(self.port),
             "-U", "postgres", "-d", "postgres", "-c", q],
            check=True, capture_output=True, text=True).stdout.strip()

    def stop(self):
        data = os.path.join(PG_HOME, "data")
        if os.path.exists(os.path.join(data, "postmaster.pid")):
            try:
                self.as_pg("pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
            except subprocess.CalledProcessError:
                pass


def measure(argv):
    """Runs the runtime; returns (wall s, CPU s, peak RSS KiB, exit code, stderr tail)."""
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    err = p.stderr.read().decode(errors="replace")[-2000:]
    code = os.waitstatus_to_exitcode(status)
    cpu = ru.ru_utime + ru.ru_stime
    return wall, cpu, ru.ru_maxrss, code, err


def count_duck(path):
    out = subprocess.run([bench.RUNTIME, "query", f"duckdb:{path}", "SELECT count(*) FROM orders"],
                         capture_output=True, text=True, check=True).stdout.split()
    return int(out[-1])


def load_once(dest, mode, records, server, pg, i):
    """One `runtime sync --to` of the served records; returns its measurements."""
    if dest == "duckdb":
        path = os.path.join(WORK, "load.duckdb")
        for f in glob.glob(path + "*"):
            os.remove(f)
        to = f"duckdb:{path}"
    else:
        schema = f"bench_{mode}_{i}"
        to = pg.url(schema)
    argv = [bench.RUNTIME, "sync", bench.SPEC, "--set", f"base_url={server.url}",
            "--out", os.path.join(WORK, "out-load"), "--to", to]
    if mode != "replace":
        argv += ["--write-mode", f"orders={mode}"]
    os.sync()
    load = os.getloadavg()[0]
    wall, cpu, rss, code, err = measure(argv)
    if code != 0:
        raise SystemExit(f"{dest} {mode} failed (exit {code}):\n{err}")
    rows = count_duck(path) if dest == "duckdb" else int(pg.sql(f"SELECT count(*) FROM {schema}.orders"))
    ok = rows == records
    r = {"dest": dest, "mode": mode, "records": records, "wall_s": wall, "cpu_s": cpu,
         "rss_mib": rss / 1024, "rows": rows, "ok": ok, "rate": records / wall, "load": load}
    log(f"  {dest:<8} {mode:<7} {records:>9,} run {i + 1}: {wall:6.2f}s {r['rate']:>10,.0f} rec/s "
        f"cpu {cpu:5.2f}s rss {r['rss_mib']:6.1f} MiB rows {rows:,}{'' if ok else ' WRONG'} "
        f"load {load:.2f}")
    if dest == "postgres":
        pg.sql(f"DROP SCHEMA {schema} CASCADE")
    return r


def measure_all(args, sizes, runs):
    """Every size, mode, destination and run; each size served from its own pages."""
    pg = None
    results = []
    try:
        if args.only != "duckdb":
            pg = Postgres()
            pg.start()
        for records in sizes:
            server = bench.Nginx(bench.generate(records))
            server.start()
            try:
                for mode in args.modes.split(","):
                    for dest in ["duckdb", "postgres"]:
                        if args.only and dest != args.only:
                            continue
                        for i in range(runs):
                            results.append(load_once(dest, mode, records, server, pg, i))
            finally:
                server.stop()
    finally:
        if pg:
            pg.stop()
    return results


def speed_table(args, results):
    """The median and best of the runs, per destination and mode."""
    lines = [
        f"{args.records:,} records (bench/orders.yaml pages from nginx on loopback), "
        f"median of {args.runs} runs; peak RSS of the runtime process (highest run).",
        "",
        "| destination | mode | median wall s | best wall s | records/s (median) | records/s (best) | CPU s | peak RSS MiB | load avg (1 min) at starts | rows ok |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode in args.modes.split(","):
        for dest in ["duckdb", "postgres"]:
            rs = [r for r in results if r["dest"] == dest and r["mode"] == mode]
            if not rs:
                continue
            wall = statistics.median(r["wall_s"] for r in rs)
            best = min(r["wall_s"] for r in rs)
            loads = [r["load"] for r in rs]
            lines.append(
                f"| {dest} | {mode} | {wall:.2f} | {best:.2f} | {args.records / wall:,.0f} | "
                f"{args.records / best:,.0f} | "
                f"{statistics.median(r['cpu_s'] for r in rs):.2f} | {max(r['rss_mib'] for r in rs):.1f} | "
                f"{min(loads):.1f}-{max(loads):.1f} | {all(r['ok'] for r in rs)} |")
    return lines


def memory_table(results):
    """Peak RSS against the number of records: one run each."""
    lines = [
        "One run per size: peak RSS of the runtime process as the load grows (bounded "
        "memory stays level once DuckDB's cache reaches its memory limit).",
        "",
        "| destination | mode | records | wall s | records/s | peak RSS MiB | rows ok |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in sorted(results, key=lambda r: (r["dest"], r["mode"], r["records"])):
        lines.append(f"| {r['dest']} | {r['mode']} | {r['records']:,} | {r['wall_s']:.2f} | "
                     f"{r['rate']:,.0f} | {r['rss_mib']:.1f} | {r['ok']} |")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", choices=["duckdb", "postgres"], help="one destination")
    ap.add_argument("--modes", default="replace,merge",
                    help="write modes measured, comma-separated (default replace,merge)")
    ap.add_argument("--memory", metavar="SIZES",
                    help="instead: peak RSS for each number of records, comma-separated "
                         "(e.g. 200000,1000000,4000000); results in bench/results/load-memory.md")
    args = ap.parse_args()
    os.makedirs(WORK, exist_ok=True)
    if args.memory:
        sizes = [int(n) for n in args.memory.split(",")]
        lines = memory_table(measure_all(args, sizes, 1))
        name = "load-memory.md"
        title = "# Load memory (bench/load.sh --memory)"
    else:
        lines = speed_table(args, measure_all(args, [args.records], args.runs))
        name = "load.md"
        title = "# Load benchmark (bench/load.sh)"
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = [title, "", f"{stamp}, commit {bench.git_rev()}. Machine: {bench.machine()}.", ""]
    text = "\n".join(head + lines) + "\n"
    print("\n" + text)
    os.makedirs(bench.RESULTS, exist_ok=True)
    with open(os.path.join(bench.RESULTS, name), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()

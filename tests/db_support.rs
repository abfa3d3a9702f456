//! Shared by the database end-to-end tests: a real PostgreSQL server of its own (initdb in
//! a temporary folder owned by the `postgres` user, started on a free loopback port,
//! stopped and removed on drop), `psql` to read it, and a DuckDB file read with the crate.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A PostgreSQL server started for one test.
pub struct Pg {
    dir: PathBuf,
    bin: PathBuf,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
}

/// The folder of `initdb`, `pg_ctl` and `psql`: `pg_config --bindir`, Debian's
/// `/usr/lib/postgresql/<version>/bin`, or PATH.
fn bindir() -> PathBuf {
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .collect();
    debian.sort();
    let path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    from_pg_config
        .into_iter()
        .chain(debian.into_iter().rev())
        .chain(path)
        .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
        .unwrap_or_else(|| {
            panic!(
                "PostgreSQL server binaries (initdb, pg_ctl) not found via pg_config, /usr/lib/postgresql/*/bin or PATH: install Debian's `postgresql` package (apt-get install -y postgresql)"
            )
        })
}

/// A free TCP port on loopback (bound, then released for the server to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Runs a command as the `postgres` user (initdb refuses root); panics with its output.
fn as_postgres(bin: &Path, args: &[&str]) {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin)
        .args(args)
        .output()
        .expect("runuser (util-linux) runs");
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}{}",
        bin.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pg {
    /// initdb (trust authentication, user `postgres`) and start on a free port.
    pub fn start() -> Pg {
        let bin = bindir();
        let base = std::env::temp_dir().join(format!(
            "runtime-pg-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&base).unwrap();
        let chown = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&base)
            .status()
            .unwrap();
        assert!(chown.success(), "chown of {}", base.display());
        let data = base.join("data");
        let data_s = data.to_str().unwrap().to_owned();
        as_postgres(
            &bin.join("initdb"),
            &[
                "-D",
                &data_s,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let opts = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                base.display()
            );
            let log = base.join("log").to_str().unwrap().to_owned();
            let out = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(bin.join("pg_ctl"))
                .args([
                    "-D", &data_s, "-o", &opts, "-l", &log, "-w", "-t", "60", "start",
                ])
                .output()
                .unwrap();
            if out.status.success() {
                return Pg {
                    dir: base,
                    bin,
                    port,
                };
            }
            last = std::fs::read_to_string(base.join("log")).unwrap_or_default();
        }
        panic!("PostgreSQL did not start: {last}");
    }

    /// The `--to` URL for a schema.
    pub fn url(&self, schema: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?schema={schema}",
            self.port
        )
    }

    /// Runs SQL with psql; returns its unaligned, tuples-only output.
    pub fn sql(&self, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .args(["-c", sql])
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// A single number from SQL.
    pub fn count(&self, sql: &str) -> i64 {
        let s = self.sql(sql);
        s.parse()
            .unwrap_or_else(|_| panic!("{sql} gave {s:?}, not a number"))
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args([
                "-D",
                data.to_str().unwrap_or(""),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs a query on a DuckDB file with `runtime query` (after the run that wrote it has
/// exited: a run holds the file's lock); the rows under the header, tab-separated.
pub fn duck_query(path: &Path, sql: &str) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_runtime"))
        .arg("query")
        .arg(format!("duckdb:{}", path.display()))
        .arg(sql)
        .output()
        .expect("runtime query runs");
    assert!(
        out.status.success(),
        "runtime query {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .map(str::to_owned)
        .collect()
}

/// Where a test loads: a PostgreSQL server of its own, or a DuckDB file.
pub enum Db {
    /// PostgreSQL, schema `raw`.
    Pg(Pg),
    /// A DuckDB file.
    Duck(PathBuf),
}

impl Db {
    /// A fresh PostgreSQL server.
    pub fn pg() -> Db {
        Db::Pg(Pg::start())
    }

    /// A DuckDB file in `dir` (not created yet).
    pub fn duck(dir: &Path) -> Db {
        Db::Duck(dir.join("load.duckdb"))
    }

    /// The `--to` value.
    pub fn to(&self) -> String {
        match self {
            Db::Pg(pg) => pg.url("raw"),
            Db::Duck(p) => format!("duckdb:{}", p.display()),
        }
    }

    /// A table's qualified name.
    pub fn table(&self, t: &str) -> String {
        match self {
            Db::Pg(_) => format!("raw.\"{t}\""),
            Db::Duck(_) => format!("main.\"{t}\""),
        }
    }

    /// A single number from SQL (`{t}` in it is replaced by the schema).
    pub fn count(&self, sql: &str) -> i64 {
        let sql = self.fix(sql);
        match self {
            Db::Pg(pg) => pg.count(&sql),
            Db::Duck(p) => {
                let rows = duck_query(p, &sql);
                let first = rows.first().cloned().unwrap_or_default();
                first
                    .parse()
                    .unwrap_or_else(|_| panic!("{sql} gave {rows:?}, not a number"))
            }
        }
    }

    /// A single text value from SQL.
    pub fn text(&self, sql: &str) -> String {
        let sql = self.fix(sql);
        match self {
            Db::Pg(pg) => {
                let s = pg.sql(&sql);
                if s.is_empty() { "NULL".into() } else { s }
            }
            Db::Duck(p) => {
                let rows = duck_query(p, &sql);
                match rows.first().map(String::as_str) {
                    None | Some("") => "NULL".into(),
                    Some(v) => v.to_owned(),
                }
            }
        }
    }

    fn fix(&self, sql: &str) -> String {
        let schema = match self {
            Db::Pg(_) => "raw",
            Db::Duck(_) => "main",
        };
        sql.replace("{s}", schema)
    }

    /// Column name -> type, as the catalog says, lowercased.
    pub fn columns(&self, table: &str) -> Vec<(String, String)> {
        let sql = self.fix(&format!(
            "SELECT column_name || ':' || lower(data_type) FROM information_schema.columns WHERE table_schema = '{{s}}' AND table_name = '{table}' ORDER BY ordinal_position"
        ));
        let text = match self {
            Db::Pg(pg) => pg.sql(&sql),
            Db::Duck(p) => duck_query(p, &sql).join("\n"),
        };
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect()
    }

    /// The type a column of ours has in this database (`bigint`, `json`, ...), lowercased.
    pub fn type_name(&self, generic: &str) -> &'static str {
        match (self, generic) {
            (_, "bigint") => "bigint",
            (Db::Pg(_), "double") => "double precision",
            (Db::Duck(_), "double") => "double",
            (_, "boolean") => "boolean",
            (_, "timestamptz") => "timestamp with time zone",
            (Db::Pg(_), "text") => "text",
            (Db::Duck(_), "text") => "varchar",
            (Db::Pg(_), "json") => "jsonb",
            (Db::Duck(_), "json") => "json",
            _ => panic!("no such type {generic}"),
        }
    }
}

/// A record store served as `GET /orders?updated_at_gte=&cursor=&limit=`, sorted by
/// (updated_at, id), the cursor being the last record's (updated_at, id).
#[derive(Default)]
pub struct Api {
    /// The records, each with `id` and `updated_at`.
    pub records: Mutex<Vec<serde_json::Value>>,
    /// Requests received.
    pub requests: AtomicUsize,
    /// Milliseconds to wait before each answer.
    pub delay_ms: AtomicUsize,
}

impl Api {
    /// Puts a record in place of the one with its id.
    pub fn upsert(&self, v: serde_json::Value) {
        let mut g = self.records.lock().unwrap();
        g.retain(|x| x["id"] != v["id"]);
        g.push(v);
    }

    /// One page as the server answers it.
    pub fn page(&self, l: &crate::support::Logged) -> crate::support::Reply {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(std::time::Duration::from_millis(delay as u64));
        }
        let limit = l.num("limit", 50);
        let gte = l.param("updated_at_gte").map(str::to_owned);
        let after: Option<(String, u64)> = l.param("cursor").and_then(|c| {
            let (t, i) = c.split_once('|')?;
            Some((t.to_owned(), i.parse().ok()?))
        });
        let key = |v: &serde_json::Value| {
            (
                v["updated_at"].as_str().unwrap_or("").to_owned(),
                v["id"].as_u64().unwrap_or(0),
            )
        };
        let mut all = self.records.lock().unwrap().clone();
        all.sort_by_key(key);
        let page: Vec<serde_json::Value> = all
            .into_iter()
            .filter(|v| gte.as_ref().is_none_or(|g| key(v).0 >= *g))
            .filter(|v| after.as_ref().is_none_or(|a| key(v) > *a))
            .take(limit)
            .collect();
        let next = (page.len() == limit)
            .then(|| page.last().map(|v| format!("{}|{}", key(v).0, key(v).1)))
            .flatten();
        crate::support::Reply::value(&serde_json::json!({"orders": page, "next_cursor": next}))
    }
}

/// An RFC 3339 time `secs` after 2024-01-01.
pub fn ts(secs: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(1_704_067_200 + secs as i64).unwrap();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

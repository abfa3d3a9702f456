//! The platforms' own Python clients against `runtime airbyte` and `runtime singer`:
//! airbyte-protocol-models checks every message of every command, PyAirbyte reads the
//! demo connector into its DuckDB cache (then only the changes), and the Singer output
//! loads `target-jsonl` and MeltanoLabs `target-postgres` (a real PostgreSQL started
//! here). The clients live in venvs made by `scripts/platform-clients.sh`; without them
//! these tests fail and say so.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use demo_api::{DataSizes, DemoConfig, DemoServer};
use serde_json::{Value, json};
use support::{Run, Sandbox};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
const SPEC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../connectors/orders.yaml");

/// The folder of the venvs: `RUNTIME_PLATFORM_VENVS`, or `.venv-platforms/` in the repo.
fn venv(name: &str) -> PathBuf {
    let root = std::env::var_os("RUNTIME_PLATFORM_VENVS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(ROOT).join(".venv-platforms"));
    let dir = root.join(name);
    assert!(
        dir.join(".requirements-hash").is_file(),
        "the Python client venv {} is missing: run ./scripts/platform-clients.sh first (it installs the pinned clients from scripts/platform-clients/*.txt; .ci/run does this)",
        dir.display()
    );
    dir
}

fn demo(orders: usize) -> DemoServer {
    demo_api::spawn(DemoConfig {
        sizes: DataSizes {
            orders,
            products: 120,
            customers: 60,
            events: 230,
        },
        ..DemoConfig::default()
    })
    .unwrap()
}

fn config(sb: &Sandbox, demo: &DemoServer) -> String {
    let doc = json!({"base_url": demo.base_url(), "api_key": demo.token()});
    sb.write("config.json", &doc.to_string())
        .to_str()
        .unwrap()
        .to_owned()
}

/// Runs a program to the end with `input` on stdin; panics with its output on failure.
#[track_caller]
fn program(cmd: &mut Command, input: Option<&[u8]>) -> (String, String) {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = stdin.write_all(&bytes);
        });
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        support_tail(&stdout),
        support_tail(&stderr)
    );
    (stdout, stderr)
}

fn support_tail(s: &str) -> &str {
    let cut = s.len().saturating_sub(6000);
    let mut i = cut;
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

fn airbyte(sb: &Sandbox, args: &[&str]) -> Run {
    let mut all = vec!["airbyte"];
    all.extend_from_slice(args);
    sb.run_env(&all, &[("RUNTIME_SPEC", SPEC)])
}

fn python(venv_dir: &Path) -> Command {
    Command::new(venv_dir.join("bin/python"))
}

#[test]
fn every_message_of_every_command_validates_against_the_protocol_models() {
    let models = venv("protocol-models");
    let api = demo(30);
    let sb = Sandbox::new();
    let cfg = config(&sb, &api);
    let bad_key = sb.write(
        "bad.json",
        &json!({"base_url": api.base_url(), "api_key": "nope-nope-nope"}).to_string(),
    );
    let missing = sb.write(
        "missing.json",
        &json!({"base_url": api.base_url()}).to_string(),
    );
    let unknown = sb.write(
        "unknown.json",
        &json!({"streams": [{"stream": {"name": "invoices"}, "sync_mode": "full_refresh"}]})
            .to_string(),
    );
    let runs: Vec<(&str, Run, i32)> = vec![
        ("spec", airbyte(&sb, &["spec"]), 0),
        ("check", airbyte(&sb, &["check", "--config", &cfg]), 0),
        (
            "check-failed",
            airbyte(&sb, &["check", "--config", bad_key.to_str().unwrap()]),
            0,
        ),
        ("discover", airbyte(&sb, &["discover", "--config", &cfg]), 0),
        ("read", airbyte(&sb, &["read", "--config", &cfg]), 0),
        (
            "read-failed",
            airbyte(&sb, &["read", "--config", bad_key.to_str().unwrap()]),
            1,
        ),
        (
            "missing-config",
            sb.run_env(
                &["airbyte", "read", "--config", missing.to_str().unwrap()],
                &[("RUNTIME_SPEC", SPEC)],
            ),
            1,
        ),
        (
            "unknown-stream",
            airbyte(
                &sb,
                &[
                    "read",
                    "--config",
                    &cfg,
                    "--catalog",
                    unknown.to_str().unwrap(),
                ],
            ),
            1,
        ),
    ];
    let mut files = Vec::new();
    let mut total = 0;
    for (name, run, code) in &runs {
        run.expect_code(*code);
        assert!(!run.stdout.is_empty(), "{name}: no output");
        total += run.stdout.lines().count();
        files.push(sb.write(&format!("{name}.jsonl"), &run.stdout));
    }
    let (out, _) = program(
        python(&models)
            .arg(Path::new(ROOT).join("tests/platform/airbyte_validate.py"))
            .args(&files),
        None,
    );
    let got: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(got["lines"], total);
    for kind in [
        "SPEC",
        "CONNECTION_STATUS",
        "CATALOG",
        "RECORD",
        "STATE",
        "LOG",
        "TRACE",
    ] {
        assert!(
            got["types"][kind].as_u64().unwrap_or(0) > 0,
            "no {kind} checked: {got}"
        );
    }
}

#[test]
fn pyairbyte_reads_every_stream_into_duckdb_then_only_the_changes() {
    let client = venv("airbyte");
    let api = demo(60);
    let sb = Sandbox::new();
    let cfg = config(&sb, &api);
    let exe = sb.path().join("bin/source-orders");
    sb.run(&["wrap", SPEC, "--airbyte", "-o", exe.to_str().unwrap()])
        .expect_code(0);
    let script = Path::new(ROOT).join("tests/platform/pyairbyte_read.py");
    let read = || -> Value {
        let (out, _) = program(
            python(&client)
                .arg(&script)
                .arg(&exe)
                .arg(&cfg)
                .current_dir(sb.path())
                .env("AIRBYTE_OFFLINE_MODE", "1")
                .env("DO_NOT_TRACK", "1")
                .env_remove("RUNTIME_SPEC"),
            None,
        );
        serde_json::from_str(out.lines().last().unwrap_or(""))
            .unwrap_or_else(|e| panic!("{e}: {out}"))
    };
    let totals = |api: &DemoServer| -> BTreeMap<&'static str, u64> {
        let orders = api.orders();
        let items: usize = orders.iter().map(|o| api.items(o.id).unwrap().len()).sum();
        BTreeMap::from([
            ("orders", orders.len() as u64),
            ("order_items", items as u64),
            ("products", 120),
            ("customers", 60),
            // Each change on the API is an event too.
            ("events", api.events().len() as u64),
        ])
    };
    let first = read();
    let want = totals(&api);
    for (stream, n) in &want {
        assert_eq!(first["rows"][stream], *n, "{stream}: {first}");
        assert_eq!(
            first["distinct"][stream], *n,
            "{stream}: duplicates: {first}"
        );
    }
    assert_eq!(first["processed"], want.values().sum::<u64>());

    // Changes: three orders updated, two new ones.
    let now = time::OffsetDateTime::now_utc();
    let mut changed: Vec<u64> = vec![5, 21, 48];
    for id in &changed {
        api.state().touch_order(*id, now).unwrap();
    }
    changed.extend(api.state().insert_orders(2).iter().map(|o| o.id));
    let changed_items: usize = changed.iter().map(|id| api.items(*id).unwrap().len()).sum();

    let second = read();
    let want = totals(&api);
    for (stream, n) in &want {
        assert_eq!(second["rows"][stream], *n, "{stream}: {second}");
        assert_eq!(
            second["distinct"][stream], *n,
            "{stream}: duplicates: {second}"
        );
    }
    // Only the changed orders and their items were fetched again (the other streams
    // have no cursor and are read in full).
    assert_eq!(
        second["processed"],
        (changed.len() + changed_items + 120 + 60 + api.events().len()) as u64,
        "{second}"
    );
}

/// A PostgreSQL server of its own, in a temporary folder owned by `postgres`, on a free port.
struct Postgres {
    dir: tempfile::TempDir,
    port: u16,
}

impl Postgres {
    fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("pg")
            .tempdir_in("/tmp")
            .unwrap();
        let data = dir.path().join("data");
        let owner = |p: &Path| {
            let (_, _) = program(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(p),
                None,
            );
        };
        owner(dir.path());
        let as_pg = |args: &[&str]| {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).args(args);
            c
        };
        program(
            &mut as_pg(&[
                "initdb",
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
            ]),
            None,
        );
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1",
            dir.path().display()
        );
        let log = dir.path().join("pg.log");
        program(
            &mut as_pg(&[
                "pg_ctl",
                "-D",
                data.to_str().unwrap(),
                "-o",
                &opts,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ]),
            None,
        );
        Self { dir, port }
    }

    fn query(&self, sql: &str) -> String {
        let (out, _) = program(
            Command::new("psql")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-tAc",
                    sql,
                ])
                .arg("-p")
                .arg(self.port.to_string()),
            None,
        );
        out.trim().to_owned()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--", "pg_ctl", "-D"])
            .arg(&data)
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn singer_output_loads_target_jsonl_and_target_postgres() {
    let jsonl = venv("target-jsonl");
    let pg_client = venv("target-postgres");
    let api = demo(45);
    let sb = Sandbox::new();
    let cfg = config(&sb, &api);
    let env = [("RUNTIME_SPEC", SPEC)];
    let tap = sb.run_env(&["singer", "--config", &cfg], &env);
    tap.expect_code(0);

    let orders = api.orders();
    let items: usize = orders.iter().map(|o| api.items(o.id).unwrap().len()).sum();
    let want = [
        ("orders", orders.len()),
        ("order_items", items),
        ("products", 120),
        ("customers", 60),
        ("events", 230),
    ];

    // target-jsonl: one file per stream, one line per record.
    let out_dir = sb.path().join("jsonl");
    let target_cfg = sb.write(
        "target-jsonl.json",
        &json!({"destination_path": out_dir, "do_timestamp_file": false}).to_string(),
    );
    program(
        Command::new(jsonl.join("bin/target-jsonl"))
            .arg("--config")
            .arg(&target_cfg),
        Some(tap.stdout.as_bytes()),
    );
    for (stream, n) in want {
        let text = std::fs::read_to_string(out_dir.join(format!("{stream}.jsonl"))).unwrap();
        assert_eq!(text.lines().count(), n, "target-jsonl {stream}");
    }

    // target-postgres into a real server, twice: no duplicates after the rerun.
    let pg = Postgres::start();
    let pg_cfg = sb.write(
        "target-postgres.json",
        &json!({"host": "127.0.0.1", "port": pg.port, "user": "postgres", "password": "",
                "database": "postgres", "default_target_schema": "shop", "load_method": "upsert"})
        .to_string(),
    );
    let load = |input: &str| -> String {
        let (out, _) = program(
            Command::new(pg_client.join("bin/target-postgres"))
                .arg("--config")
                .arg(&pg_cfg),
            Some(input.as_bytes()),
        );
        // The target prints the state it committed; the last line is what Meltano keeps.
        out.lines().last().unwrap_or("").to_owned()
    };
    let state = load(&tap.stdout);
    let count = |stream: &str| -> (usize, usize) {
        let keys = match stream {
            "order_items" => "order_id, line",
            "products" => "sku",
            _ => "id",
        };
        let n = pg.query(&format!("SELECT COUNT(*) FROM shop.{stream}"));
        let d = pg.query(&format!(
            "SELECT COUNT(*) FROM (SELECT DISTINCT {keys} FROM shop.{stream}) d"
        ));
        (n.parse().unwrap(), d.parse().unwrap())
    };
    for (stream, n) in want {
        assert_eq!(count(stream), (n, n), "target-postgres {stream}");
    }

    api.state()
        .touch_order(9, time::OffsetDateTime::now_utc())
        .unwrap();
    let new = api.state().insert_orders(1);
    let state_path = sb.write("state.json", &state);
    let tap = sb.run_env(
        &[
            "singer",
            "--config",
            &cfg,
            "--state",
            state_path.to_str().unwrap(),
        ],
        &env,
    );
    tap.expect_code(0);
    let rerun_orders = tap
        .stdout
        .lines()
        .filter(|l| l.contains("\"type\":\"RECORD\",\"stream\":\"orders\""))
        .count();
    assert_eq!(rerun_orders, 2, "only the touched and the new order");
    load(&tap.stdout);
    let orders = api.orders();
    let items: usize = orders.iter().map(|o| api.items(o.id).unwrap().len()).sum();
    assert_eq!(orders.len(), 46);
    assert_eq!(new.len(), 1);
    for (stream, n) in [
        ("orders", 46),
        ("order_items", items),
        ("products", 120),
        ("customers", 60),
        // Each change on the API is an event too.
        ("events", api.events().len()),
    ] {
        assert_eq!(
            count(stream),
            (n, n),
            "target-postgres {stream} after the rerun"
        );
    }
}

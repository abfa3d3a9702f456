//! Shared helpers of the end-to-end tests: a loopback HTTP server whose answers a test
//! writes as a closure, a log of the requests it received, a sandbox folder in which the
//! real `runtime` binary runs, and readers for its JSON-lines output.
//!
//! Each test file includes this with `mod support;`; not every file uses every helper.
#![allow(dead_code)]

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use serde_json::Value;

/// Longest a single run of the binary may take before the test fails (it must not hang).
const RUN_TIMEOUT: Duration = Duration::from_secs(90);

/// One request as the test server received it.
#[derive(Debug, Clone)]
pub struct Logged {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// Query parameters, decoded, in order.
    pub query: Vec<(String, String)>,
    /// Headers, names lowercase, in order (repeated names repeated).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Logged {
    /// The first value of a query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a query parameter.
    pub fn params(&self, name: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A query parameter parsed as a number (`default` when absent).
    pub fn num(&self, name: &str, default: usize) -> usize {
        self.param(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    /// The first value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The form fields of an `application/x-www-form-urlencoded` body.
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// The raw query string as sent (still percent-encoded).
    pub fn raw_query(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&self.query)
            .finish()
    }
}

/// What the test server answers.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers; a name may repeat (sent as separate header lines).
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Reply {
    /// 200 with a JSON body given as text, sent byte for byte.
    pub fn json(text: impl Into<String>) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: text.into().into_bytes(),
        }
    }

    /// 200 with a JSON value.
    pub fn value(v: &Value) -> Self {
        Self::json(v.to_string())
    }

    /// 200 with any bytes and content type.
    pub fn bytes(content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
        }
    }

    /// A status with a short text body.
    pub fn status(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    /// Changes the status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Adds a header line (repeating a name adds another line).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

type HandlerFn = dyn Fn(&Logged) -> Reply + Send + Sync;

#[derive(Clone)]
struct Shared {
    log: Arc<Mutex<Vec<Logged>>>,
    handler: Arc<HandlerFn>,
}

/// An axum server on 127.0.0.1:0, on its own thread with its own tokio runtime; it
/// stops when dropped.
pub struct Server {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Logged>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// Runs a prepared `runtime` command to its end (stdin closed, stdout and stderr captured)
/// and reaps it with `wait4`, for its own peak RSS in bytes; fails the test after
/// `timeout`. A `pre_exec` hook (none is needed: one that does nothing is added) makes the
/// child a fork rather than a vfork: a vfork child inherits the test process's lifetime peak
/// as its own `ru_maxrss`.
// The child is reaped by `wait4`, which std's `wait` cannot see.
#[allow(clippy::zombie_processes)]
pub fn run_peak(mut cmd: Command, args: Vec<String>, timeout: Duration) -> (Run, u64) {
    use std::os::unix::process::CommandExt;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the hook does nothing, so it is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| Ok(()));
    }
    let mut child = cmd.spawn().unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let pid = child.id() as libc::pid_t;
    let deadline = Instant::now() + timeout;
    let mut status = 0;
    // SAFETY: a zeroed rusage is valid; wait4 only writes into what we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: as above; WNOHANG so a hung child cannot hang the test.
        let got = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if got == pid {
            break;
        }
        assert_eq!(got, 0, "wait4 failed");
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("runtime {args:?} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    let run = Run {
        args,
        code,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    };
    // ru_maxrss is in KiB on Linux.
    (run, usage.ru_maxrss as u64 * 1024)
}

/// Starts a server that answers every request with `handler` and logs every request.
pub fn serve(handler: impl Fn(&Logged) -> Reply + Send + Sync + 'static) -> Server {
    serve_on("127.0.0.1", handler)
}

/// [`serve`] on another loopback address, e.g. `127.0.0.2` (on Linux every 127.x.y.z is
/// loopback and a distinct origin): a second host for cross-origin tests. Port 0.
pub fn serve_on(ip: &str, handler: impl Fn(&Logged) -> Reply + Send + Sync + 'static) -> Server {
    let log = Arc::new(Mutex::new(Vec::new()));
    let shared = Shared {
        log: log.clone(),
        handler: Arc::new(handler),
    };
    let app = Router::new().fallback(handle).with_state(shared);
    let bind = format!("{ip}:0");
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind(&bind).await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await;
        });
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("test server did not start");
    Server {
        addr,
        log,
        stop: Some(stop_tx),
    }
}

async fn handle(State(st): State<Shared>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 16 << 20)
        .await
        .unwrap_or_default();
    let logged = Logged {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts
            .uri
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
    };
    st.log.lock().unwrap().push(logged.clone());
    let reply = (st.handler)(&logged);
    let mut resp = Response::builder().status(reply.status);
    for (k, v) in &reply.headers {
        resp = resp.header(k.as_str(), v.as_str());
    }
    resp.body(Body::from(reply.body)).unwrap()
}

impl Server {
    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Logged> {
        self.log.lock().unwrap().clone()
    }

    /// The requests to one path, in arrival order.
    pub fn requests_to(&self, path: &str) -> Vec<Logged> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// The values one query parameter had, request by request, on one path.
    pub fn param_seq(&self, path: &str, name: &str) -> Vec<Option<String>> {
        self.requests_to(path)
            .iter()
            .map(|r| r.param(name).map(str::to_owned))
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A TCP port on loopback that nothing listens on (bound, then closed).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    port
}

/// The outcome of one run of the binary.
#[derive(Debug, Clone)]
pub struct Run {
    /// The command line, for failure messages.
    pub args: Vec<String>,
    /// Exit status (None when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// One row of the summary table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// `ok` or `FAILED`.
    pub status: String,
    /// Records written.
    pub records: u64,
    /// Pages received.
    pub pages: u64,
    /// Requests sent.
    pub requests: u64,
    /// Retries.
    pub retries: u64,
}

impl Run {
    /// Panics, showing both outputs, unless the exit status is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "runtime {:?} exited with {:?}, expected {code}\n--- stdout\n{}\n--- stderr\n{}",
            self.args,
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics unless stderr contains every fragment.
    #[track_caller]
    pub fn expect_stderr(&self, fragments: &[&str]) -> &Self {
        for f in fragments {
            assert!(
                self.stderr.contains(f),
                "stderr of runtime {:?} lacks {f:?}\n--- stderr\n{}",
                self.args,
                self.stderr
            );
        }
        self
    }

    /// Panics unless stdout contains every fragment.
    #[track_caller]
    pub fn expect_stdout(&self, fragments: &[&str]) -> &Self {
        for f in fragments {
            assert!(
                self.stdout.contains(f),
                "stdout of runtime {:?} lacks {f:?}\n--- stdout\n{}\n--- stderr\n{}",
                self.args,
                self.stdout,
                self.stderr
            );
        }
        self
    }

    /// Panics if stdout or stderr contains `secret`.
    #[track_caller]
    pub fn expect_no_leak(&self, secret: &str) -> &Self {
        assert!(
            !self.stdout.contains(secret) && !self.stderr.contains(secret),
            "a secret leaked into the output of runtime {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.args,
            self.stdout,
            self.stderr
        );
        self
    }

    /// The summary table's row of a stream.
    #[track_caller]
    pub fn row(&self, stream: &str) -> Row {
        let mut lines = self.stdout.lines();
        let header = lines
            .by_ref()
            .find(|l| l.starts_with("stream ") && l.contains("records"))
            .unwrap_or_else(|| panic!("no summary table in stdout:\n{}", self.stdout));
        let cols: Vec<&str> = header.split_whitespace().collect();
        assert_eq!(
            cols,
            [
                "stream",
                "status",
                "records",
                "pages",
                "requests",
                "retries",
                "waited",
                "seconds",
                "records/s"
            ],
            "summary header changed"
        );
        let line = lines
            .find(|l| l.split_whitespace().next() == Some(stream))
            .unwrap_or_else(|| panic!("no summary row for {stream}:\n{}", self.stdout));
        let c: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(c.len(), 9, "summary row {line:?}");
        Row {
            status: c[1].to_owned(),
            records: c[2].parse().unwrap(),
            pages: c[3].parse().unwrap(),
            requests: c[4].parse().unwrap(),
            retries: c[5].parse().unwrap(),
        }
    }
}

/// A temporary folder in which the binary runs; output goes to `<dir>/out`.
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    /// A fresh, empty folder.
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The output folder given to `--out`.
    pub fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    /// Writes a file in the folder and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Writes `spec.yaml`.
    pub fn spec(&self, text: &str) -> PathBuf {
        self.write("spec.yaml", text)
    }

    /// Syncs `spec.yaml` into [`out`](Self::out) with `base_url` and more `--set`s.
    pub fn sync_spec(&self, base: &str, sets: &[&str]) -> Run {
        let spec = self.path().join("spec.yaml");
        let out = self.out();
        let base = format!("base_url={base}");
        let mut args = vec![
            "sync",
            spec.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--set",
            &base,
        ];
        for s in sets {
            args.push("--set");
            args.push(s);
        }
        self.run(&args)
    }

    /// Runs the binary with these arguments, in the folder, without a terminal.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[])
    }

    /// Runs the binary with extra environment variables.
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        self.run_io(args, env, None)
    }

    /// Runs the binary with extra environment variables, writing `input` to its standard
    /// input (then closing it).
    pub fn run_stdin(&self, args: &[&str], env: &[(&str, &str)], input: &[u8]) -> Run {
        self.run_io(args, env, Some(input))
    }

    fn run_io(&self, args: &[&str], env: &[(&str, &str)], input: Option<&[u8]>) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_runtime"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_remove("RUNTIME_LOG")
            .env("NO_COLOR", "1")
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("cannot start the runtime binary");
        if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
            let bytes = bytes.to_vec();
            // On its own thread, so a child that stops reading cannot block the test.
            std::thread::spawn(move || {
                use std::io::Write;
                let _ = stdin.write_all(&bytes);
            });
        }
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let t_out = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = out.read_to_end(&mut s);
            s
        });
        let t_err = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = err.read_to_end(&mut s);
            s
        });
        let deadline = Instant::now() + RUN_TIMEOUT;
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                let stderr = String::from_utf8_lossy(&t_err.join().unwrap()).into_owned();
                panic!(
                    "runtime {args:?} did not finish within {RUN_TIMEOUT:?}\n--- stderr\n{stderr}"
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let run = Run {
            args: args.iter().map(|s| s.to_string()).collect(),
            code: status.code(),
            stdout: String::from_utf8_lossy(&t_out.join().unwrap()).into_owned(),
            stderr: String::from_utf8_lossy(&t_err.join().unwrap()).into_owned(),
        };
        // `E2E_SHOW=1 cargo test ... -- --nocapture` shows what each run printed.
        if std::env::var_os("E2E_SHOW").is_some() {
            eprintln!(
                "=== runtime {:?} -> {:?}\n--- stdout\n{}--- stderr\n{}",
                run.args, run.code, run.stdout, run.stderr
            );
        }
        run
    }

    /// `runtime sync spec.yaml --out out --set base_url=<server> ARGS...`.
    pub fn sync(&self, server: &Server, args: &[&str]) -> Run {
        self.sync_env(server, args, &[])
    }

    /// [`sync`](Self::sync) with extra environment variables.
    pub fn sync_env(&self, server: &Server, args: &[&str], env: &[(&str, &str)]) -> Run {
        let spec = self.dir.path().join("spec.yaml");
        let out = self.out();
        let base = format!("base_url={}", server.url());
        let mut all: Vec<&str> = vec![
            "sync",
            spec.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--set",
            &base,
        ];
        all.extend_from_slice(args);
        self.run_env(&all, env)
    }

    /// `runtime <command> spec.yaml --set base_url=<server> ARGS...` for check and discover.
    pub fn probe(&self, command: &str, server: &Server, args: &[&str]) -> Run {
        let spec = self.dir.path().join("spec.yaml");
        let base = format!("base_url={}", server.url());
        let mut all: Vec<&str> = vec![command, spec.to_str().unwrap(), "--set", &base];
        all.extend_from_slice(args);
        self.run(&all)
    }

    /// Path of a stream's output file.
    pub fn output(&self, stream: &str) -> PathBuf {
        self.out().join(format!("{stream}.jsonl"))
    }

    /// Whether a stream's output file exists.
    pub fn has_output(&self, stream: &str) -> bool {
        self.output(stream).exists()
    }

    /// A stream's output, whole.
    #[track_caller]
    pub fn text(&self, stream: &str) -> String {
        let p = self.output(stream);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
    }

    /// A stream's output lines; checks that every line is one JSON value and that the
    /// file ends with a newline.
    #[track_caller]
    pub fn lines(&self, stream: &str) -> Vec<String> {
        let text = self.text(stream);
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{stream}.jsonl does not end with a newline"
        );
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        for (i, l) in lines.iter().enumerate() {
            assert!(
                serde_json::from_str::<Value>(l).is_ok(),
                "{stream}.jsonl line {} is not one JSON value: {l:?}",
                i + 1
            );
        }
        lines
    }

    /// A stream's records, parsed.
    #[track_caller]
    pub fn records(&self, stream: &str) -> Vec<Value> {
        self.lines(stream)
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The `id` field of each record of a stream, in file order.
    #[track_caller]
    pub fn ids(&self, stream: &str) -> Vec<i64> {
        self.records(stream)
            .iter()
            .map(|r| {
                r["id"]
                    .as_i64()
                    .unwrap_or_else(|| panic!("no integer id in {r}"))
            })
            .collect()
    }

    /// Names of the files in the output folder, sorted; without the lock files
    /// (`.runtime.lock`, `.<file>.lock`), which stay on purpose and lock nothing once
    /// their process ends.
    pub fn out_files(&self) -> Vec<String> {
        let mut v: Vec<String> = match std::fs::read_dir(self.out()) {
            Ok(rd) => rd
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| !(n.starts_with('.') && n.ends_with(".lock")))
                .collect(),
            Err(_) => Vec::new(),
        };
        v.sort();
        v
    }
}

/// The header of a test spec: `base_url` config, short retries; `config` and `http` are
/// extra lines (indented two spaces) under those keys, `streams` the streams block.
pub fn spec_full(config: &str, http: &str, streams: &str) -> String {
    format!(
        "version: 1\nname: t\nconfig:\n  base_url: {{ type: string }}\n{}http:\n  base_url: \"{{{{ config.base_url }}}}\"\n  retry: {{ max_attempts: 3, initial: 10ms, max: 50ms }}\n{}streams:\n{}",
        nl(config),
        nl(http),
        streams.trim_start_matches('\n')
    )
}

/// A test spec with only streams (indented two spaces).
pub fn spec(streams: &str) -> String {
    spec_full("", "", streams)
}

fn nl(block: &str) -> String {
    let b = block.trim_start_matches('\n');
    if b.is_empty() || b.ends_with('\n') {
        b.to_owned()
    } else {
        format!("{b}\n")
    }
}

/// A record as a test API serves it: key order not alphabetical, a decimal with a
/// trailing zero, spaces after separators; the output must keep all of it.
pub fn rec(id: usize) -> String {
    format!(r#"{{"id": {id}, "name": "item {id}", "price": {id}.50, "b": true, "a": null}}"#)
}

/// The records with these ids, joined for the inside of a JSON array.
pub fn recs(ids: impl IntoIterator<Item = usize>) -> String {
    ids.into_iter().map(rec).collect::<Vec<_>>().join(", ")
}

/// The expected output lines of records with these ids.
pub fn rec_lines(ids: impl IntoIterator<Item = usize>) -> Vec<String> {
    ids.into_iter().map(rec).collect()
}

/// The text of an example connector, `connectors/<name>.yaml`.
pub fn connector(name: &str) -> String {
    let path = format!(
        "{}/../../connectors/{name}.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path).unwrap()
}

//! Shared by the `webhooks*` end-to-end tests: run the real `runtime serve` on a free
//! loopback port, sign deliveries the way each scheme's specification describes, send
//! them, read the output.
//!
//! The signer is written from the specifications' text, independently of the receiver:
//! HMAC (RFC 2104) is built here on SHA-256 rather than taken from the `hmac` crate the
//! receiver uses.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The spec every webhook test serves.
pub const SPEC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/webhooks/serve.yaml"
);

/// `order_events` (GitHub style): the current secret.
pub const GH_SECRET: &str = "gh-secret-new-4f1c";
/// `order_events`: the secret being rotated out.
pub const GH_SECRET_OLD: &str = "gh-secret-old-9a2b";
/// `plain_events` (base64 HMAC).
pub const PLAIN_SECRET: &str = "plain-secret-55aa";
/// `payments` (Stripe).
pub const STRIPE_SECRET: &str = "whsec_stripe_test_7d3e";
/// `messages` (Standard Webhooks), the specification's test-vector secret.
pub const STD_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// Every secret, to check none leaks into logs or output.
pub const SECRETS: [&str; 5] = [
    GH_SECRET,
    GH_SECRET_OLD,
    PLAIN_SECRET,
    STRIPE_SECRET,
    STD_SECRET,
];

/// Longest a server may take to start or to stop.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(60);

/// HMAC-SHA256 per RFC 2104: H((K ^ opad) || H((K ^ ipad) || m)), 64-byte blocks.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner_key: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let outer_key: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&inner_key)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(&outer_key)
        .chain_update(inner)
        .finalize()
        .into()
}

/// GitHub: `X-Hub-Signature-256: sha256=<lowercase hex HMAC of the body>`.
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(hmac_sha256(secret.as_bytes(), body))
    )
}

/// Base64 HMAC of the body, no prefix.
pub fn base64_signature(secret: &str, body: &[u8]) -> String {
    STANDARD.encode(hmac_sha256(secret.as_bytes(), body))
}

/// Stripe: `t=<ts>,v1=<hex HMAC of "<ts>.<body>">`, keyed with the secret's text as is.
pub fn stripe_signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(body);
    format!(
        "t={t},v1={}",
        hex::encode(hmac_sha256(secret.as_bytes(), &signed))
    )
}

/// Standard Webhooks: `v1,<base64 HMAC of "<id>.<ts>.<body>">`, keyed with the base64
/// decoding of the secret after `whsec_`.
pub fn standard_signature(secret: &str, id: &str, ts: i64, body: &[u8]) -> String {
    let key = STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .expect("test secret is base64");
    let mut signed = format!("{id}.{ts}.").into_bytes();
    signed.extend_from_slice(body);
    format!("v1,{}", STANDARD.encode(hmac_sha256(&key, &signed)))
}

/// Now, in Unix seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A running `runtime serve`.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The output folder.
    pub out: PathBuf,
    /// Where its stderr (the logs) goes.
    pub log: PathBuf,
    stdout_rest: mpsc::Receiver<String>,
}

/// How a server ended.
#[derive(Debug)]
pub struct Ended {
    /// Exit status.
    pub status: ExitStatus,
    /// What it printed after the `listening on` line.
    pub stdout: String,
    /// Its logs.
    pub stderr: String,
}

/// The arguments that pass every secret.
pub fn secret_args() -> Vec<String> {
    [
        ("gh_secret", GH_SECRET),
        ("gh_secret_old", GH_SECRET_OLD),
        ("b64_secret", PLAIN_SECRET),
        ("stripe_secret", STRIPE_SECRET),
        ("std_secret", STD_SECRET),
    ]
    .iter()
    .flat_map(|(k, v)| ["--set".to_owned(), format!("{k}={v}")])
    .collect()
}

impl Server {
    /// Starts `runtime serve` on the test spec with output in `<dir>/out`.
    pub fn start(dir: &Path) -> Server {
        Self::start_with_env(dir, &[])
    }

    /// Starts it with extra environment variables (fault injection).
    pub fn start_with_env(dir: &Path, env: &[(&str, &str)]) -> Server {
        Self::start_with(dir, env, &[])
    }

    /// Starts it with extra environment variables and extra arguments.
    pub fn start_with(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Server {
        let out = dir.join("out");
        let log = dir.join(format!(
            "serve-{}.log",
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_runtime"));
        cmd.arg("serve")
            .arg(SPEC)
            .args(secret_args())
            .args(["--listen", "127.0.0.1:0", "--out"])
            .arg(&out)
            .args(args)
            .current_dir(dir)
            .env("RUNTIME_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start runtime serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = rx.recv_timeout(PROCESS_TIMEOUT).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!(
                "runtime serve did not print its address; logs:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        let base = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {first}"))
            .to_owned();
        Server {
            child: Some(child),
            base,
            out,
            log,
            stdout_rest: rx,
        }
    }

    /// URL of a path on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(self) -> Ended {
        let pid = self.pid();
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM failed");
        self.wait()
    }

    /// Kills with SIGKILL (`kill -9`): no clean-up of any kind.
    pub fn kill9(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Waits for the process to exit on its own.
    pub fn wait(mut self) -> Ended {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + PROCESS_TIMEOUT;
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "runtime serve did not exit; logs:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stdout = String::new();
        while let Ok(line) = self.stdout_rest.recv_timeout(Duration::from_secs(5)) {
            stdout.push_str(&line);
            stdout.push('\n');
        }
        Ended {
            status,
            stdout,
            stderr: std::fs::read_to_string(&self.log).unwrap_or_default(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// An HTTP client for one test.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// POSTs `body` with `headers`; returns the status and the JSON answer.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, Value) {
    let mut req = client.post(url).body(body.to_vec());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = req.send().await.expect("request sent");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, json)
}

/// A delivery to `order_events`, signed with `secret`.
pub async fn post_order(
    client: &reqwest::Client,
    server: &Server,
    secret: &str,
    body: &[u8],
) -> (u16, Value) {
    let sig = github_signature(secret, body);
    post(
        client,
        &server.url("/hooks/orders"),
        &[("X-Hub-Signature-256", sig)],
        body,
    )
    .await
}

/// The JSON lines of a file (none if it does not exist).
pub fn read_lines(path: &Path) -> Vec<Value> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("{}: bad line {l:?}: {e}", path.display()))
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Waits until `path` has at least `n` lines (the drain is asynchronous), up to 30 s.
pub fn wait_for_lines(path: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let complete = text.lines().count() >= n && (text.is_empty() || text.ends_with('\n'));
        if complete || Instant::now() > deadline {
            return read_lines(path);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Fails when a log or file holds a secret or a signature value.
pub fn assert_no_secret(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} contains a secret");
    }
    assert!(
        !text.contains("sha256="),
        "{what} contains a signature value"
    );
}

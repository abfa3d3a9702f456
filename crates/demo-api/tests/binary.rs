//! The `demo-api` binary: first stdout line, admin API, graceful stop on SIGTERM, usage errors.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Running {
    child: Child,
    base: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_demo-api"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    assert!(base.starts_with("http://127.0.0.1:"), "{line}");
    Running { child, base }
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[tokio::test]
async fn serves_controls_and_stops_on_sigterm() {
    let mut s = start(&["--orders", "30", "--token", "t0k", "--rps", "500"]);
    let c = reqwest::Client::new();
    let page: Value = c
        .get(format!("{}/orders?limit=1000", s.base))
        .bearer_auth("t0k")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["orders"].as_array().unwrap().len(), 30);
    assert!(page["next_cursor"].is_null());

    // Admin: queue a fault, see it applied, read the log.
    let r = c
        .post(format!("{}/_admin/faults", s.base))
        .bearer_auth("t0k")
        .json(&json!({"path": "/products", "fault": {"kind": "status", "code": 503, "headers": [["Retry-After", "2"]]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .get(format!("{}/products", s.base))
        .bearer_auth("t0k")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "2");
    let log: Value = c
        .get(format!("{}/_admin/requests", s.base))
        .bearer_auth("t0k")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/orders", "/products"]);
    assert_eq!(log[1]["status"], 503);
    // Admin needs the token too.
    let r = c
        .get(format!("{}/_admin/requests", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Insert through the admin API.
    let r = c
        .post(format!("{}/_admin/orders/insert", s.base))
        .bearer_auth("t0k")
        .json(&json!({"count": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap().as_array().unwrap().len(),
        2
    );

    let pid = s.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = wait_exit(&mut s.child, Duration::from_secs(10)).expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec!["--webhook-url", "http://127.0.0.1:9/x"],
        vec!["--webhook-demo", "3"],
        vec![
            "--webhook-url",
            "http://127.0.0.1:9/x",
            "--webhook-secret",
            "s",
            "--webhook-scheme",
            "github",
        ],
        vec!["--listen", "nowhere"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_demo-api"))
            .args(&args)
            .env_remove("DEMO_WEBHOOK_SECRET")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(!out.stderr.is_empty());
    }
}

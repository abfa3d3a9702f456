//! Slow senders cannot starve genuine ones: 1,100 connections from one address send
//! full headers and then trickle their body, and meanwhile genuine signed deliveries
//! from another address are answered within 1 s at p99, every one stored, and `/health`
//! answers at once. The slow connections are dropped at the end; nothing waits for them.
//!
//! Two servers: one with the default limits (the slow address is capped: most of its
//! requests are refused at once), and one with every per-address cap and the rate rule
//! off and only 16 store slots, so all 1,100 bodies stay open while the genuine
//! deliveries pass: a slow body holds no slot.

#[path = "webhooks_support.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

const SLOW: usize = 1100;
const GENUINE: usize = 200;
const SLOW_IP: &str = "127.0.0.3";
const GENUINE_IP: &str = "127.0.0.2";

/// Lets this process hold thousands of sockets.
fn raise_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    lim.rlim_cur = lim.rlim_max;
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    assert!(
        lim.rlim_cur >= 4 * SLOW as u64,
        "the hard open-file limit ({}) is too low for this test",
        lim.rlim_cur
    );
}

fn addr_of(server: &Server) -> SocketAddr {
    server.base.trim_start_matches("http://").parse().unwrap()
}

/// Opens a connection from `SLOW_IP`, sends the headers of a 2,000-byte delivery and one
/// byte of its body, and leaves it there.
async fn slow_connection(to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(format!("{SLOW_IP}:0").parse().unwrap())
        .unwrap();
    let mut stream = socket.connect(to).await.unwrap();
    let head = format!(
        "POST /hooks/orders HTTP/1.1\r\nhost: {to}\r\ncontent-type: application/json\r\n\
         x-hub-signature-256: sha256={}\r\ncontent-length: 2000\r\n\r\n{{",
        "0".repeat(64)
    );
    // The server may already have closed a connection over a cap: that is its answer.
    let _ = stream.write_all(head.as_bytes()).await;
    stream
}

async fn open_slow(to: SocketAddr) -> Vec<TcpStream> {
    let gate = Arc::new(tokio::sync::Semaphore::new(256));
    let tasks: Vec<_> = (0..SLOW)
        .map(|_| {
            let gate = gate.clone();
            tokio::spawn(async move {
                let _turn = gate.acquire_owned().await.unwrap();
                slow_connection(to).await
            })
        })
        .collect();
    let started = Instant::now();
    let mut streams = Vec::with_capacity(SLOW);
    for t in tasks {
        streams.push(t.await.unwrap());
    }
    eprintln!("{SLOW} slow connections opened in {:?}", started.elapsed());
    streams
}

/// Whether the server has ended this connection (answered and closed, or reset it), by
/// peeking at the socket without waiting.
fn ended(stream: &TcpStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut byte = 0u8;
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    // An answer (a 429) is followed by the close, so any byte counts as the end too.
    n >= 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::WouldBlock
}

/// Whether the server's answer on this connection, unread so far, is a 429.
fn answered_429(stream: &TcpStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut head = [0u8; 12];
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            head.as_mut_ptr().cast(),
            head.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n == 12 && &head == b"HTTP/1.1 429"
}

/// How many of `streams` the server has ended, waiting up to `wait` for `at_least`.
async fn count_ended(streams: &[TcpStream], at_least: usize, wait: Duration) -> usize {
    let deadline = Instant::now() + wait;
    loop {
        let n = streams.iter().filter(|s| ended(s)).count();
        if n >= at_least || Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn genuine_client() -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(GENUINE_IP.parse::<std::net::IpAddr>().unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Sends the genuine deliveries, 20 at a time; returns each one's latency, sorted.
async fn deliver(server: &Server, tag: &str) -> Vec<Duration> {
    let client = genuine_client();
    let url = server.url("/hooks/orders");
    let gate = Arc::new(tokio::sync::Semaphore::new(20));
    let tasks: Vec<_> = (0..GENUINE)
        .map(|i| {
            let (client, url, gate) = (client.clone(), url.clone(), gate.clone());
            let body = json!({
                "id": format!("{tag}_{i}"),
                "data": {"id": i, "updated_at": "2024-06-01T12:00:00Z"}
            })
            .to_string();
            tokio::spawn(async move {
                let _turn = gate.acquire_owned().await.unwrap();
                let sig = github_signature(GH_SECRET, body.as_bytes());
                let started = Instant::now();
                let r = client
                    .post(&url)
                    .header("X-Hub-Signature-256", sig)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let v: Value = r.json().await.unwrap();
                let took = started.elapsed();
                assert_eq!((status, v["status"].as_str()), (200, Some("stored")), "{v}");
                took
            })
        })
        .collect();
    let mut took = Vec::with_capacity(GENUINE);
    for t in tasks {
        took.push(t.await.unwrap());
    }
    took.sort();
    took
}

fn p99(sorted: &[Duration]) -> Duration {
    sorted[(sorted.len() * 99).div_ceil(100) - 1]
}

/// `GET /health` from `ip`; returns how long it took.
async fn health(server: &Server, ip: &str) -> Duration {
    let client = reqwest::Client::builder()
        .local_address(ip.parse::<std::net::IpAddr>().unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let started = Instant::now();
    let r = client.get(server.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    started.elapsed()
}

/// Stops the server (the slow connections are gone by then) and checks that every
/// genuine delivery is stored and written out once.
fn stop_and_check(server: Server, out: &std::path::Path) {
    let ended = server.terminate();
    assert!(ended.status.success(), "{ended:?}");
    assert!(
        ended
            .stdout
            .contains(&format!("serve: {GENUINE} stored, 0 already processed")),
        "{}",
        ended.stdout
    );
    let lines = read_lines(&out.join("orders.jsonl"));
    assert_eq!(lines.len(), GENUINE);
    assert_no_secret("the log", &ended.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_default_limits_a_slow_address_is_capped_and_genuine_deliveries_pass() {
    raise_nofile();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let started = Instant::now();
    let slow = open_slow(addr_of(&server)).await;

    // Past 256 connections the address is closed at once, and past 64 bodies being read
    // its requests are answered 429: at least 1,036 of the 1,100 end without waiting
    // for any timeout.
    let refused = count_ended(&slow, SLOW - 64, Duration::from_secs(3)).await;
    assert!(
        refused >= SLOW - 64,
        "only {refused} slow connections were refused"
    );
    let told = slow.iter().filter(|s| answered_429(s)).count();
    assert!(told > 0, "no slow request was answered 429");

    let took = deliver(&server, "a").await;
    let health_slow_ip = health(&server, SLOW_IP).await;
    let health_other = health(&server, GENUINE_IP).await;
    let elapsed = started.elapsed();
    eprintln!(
        "defaults: {refused} refused ({told} answered 429); genuine p50 {:?} p99 {:?} max {:?}; /health {:?} / {:?}; {elapsed:?} in all",
        took[took.len() / 2],
        p99(&took),
        took[took.len() - 1],
        health_slow_ip,
        health_other
    );
    assert!(p99(&took) < Duration::from_secs(1), "p99 {:?}", p99(&took));
    assert!(health_slow_ip < Duration::from_secs(1));
    assert!(health_other < Duration::from_secs(1));
    drop(slow);
    stop_and_check(server, &dir.path().join("out"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_hold_no_store_slot() {
    raise_nofile();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &[],
        &[
            "--max-connections-per-peer",
            "0",
            "--max-requests-per-peer",
            "0",
            "--body-min-rate",
            "0",
            "--max-in-flight",
            "16",
        ],
    );
    let started = Instant::now();
    let slow = open_slow(addr_of(&server)).await;
    // Give the server time to read every request's headers: each is then a body being read.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let took = deliver(&server, "b").await;
    let health_took = health(&server, SLOW_IP).await;

    // Every slow connection is still open, its body still being waited for.
    let open = SLOW - count_ended(&slow, 0, Duration::ZERO).await;
    eprintln!(
        "no caps, 16 slots: {open} slow bodies open; genuine p50 {:?} p99 {:?} max {:?}; /health {:?}; {:?} in all",
        took[took.len() / 2],
        p99(&took),
        took[took.len() - 1],
        health_took,
        started.elapsed()
    );
    assert_eq!(open, SLOW, "slow connections were closed");
    assert!(p99(&took) < Duration::from_secs(1), "p99 {:?}", p99(&took));
    assert!(health_took < Duration::from_secs(1));
    drop(slow);
    stop_and_check(server, &dir.path().join("out"));
}

#[test]
fn bad_limit_values_are_refused_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for (flag, value, says) in [
        ("--retention", "soon", "`soon` is not a duration"),
        ("--retention", "0s", "is zero"),
        ("--body-timeout", "0s", "is zero"),
        ("--max-in-flight", "0", "at least 1"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_runtime"))
            .args(["serve", SPEC, "--out"])
            .arg(dir.path())
            .args([flag, value])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(
            stderr.contains(flag) && stderr.contains(says),
            "{flag} {value}: {stderr}"
        );
    }
}

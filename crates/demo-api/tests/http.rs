//! The demo API over real HTTP on loopback: auth, every pagination style, rate limits, faults,
//! idempotent creates and webhooks.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use demo_api::{DemoConfig, DemoServer, Fault, Scheme, WebhookConfig, sign, spawn};
use reqwest::StatusCode;
use serde_json::{Value, json};

const TOKEN: &str = "demo-token";

fn server(config: DemoConfig) -> DemoServer {
    spawn(config).unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn get(url: &str) -> reqwest::Response {
    client().get(url).bearer_auth(TOKEN).send().await.unwrap()
}

async fn get_json(url: &str) -> Value {
    let r = get(url).await;
    assert_eq!(r.status(), StatusCode::OK, "{url}");
    r.json().await.unwrap()
}

/// Walks `/orders` with `query` and page size `limit`; returns every id, in order.
async fn walk_orders(base: &str, query: &str, limit: usize) -> Vec<u64> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/orders?sort=updated_at&limit={limit}{query}");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page = get_json(&url).await;
        ids.extend(
            page["orders"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["id"].as_u64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return ids,
        }
    }
}

#[tokio::test]
async fn auth_is_required_and_errors_are_json() {
    let s = server(DemoConfig::default());
    let r = client()
        .get(format!("{}/orders", s.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().contains_key("x-ratelimit-remaining"));
    assert!(r.headers().contains_key("x-ratelimit-reset"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
    let r = client()
        .get(format!("{}/orders", s.base_url()))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = get(&format!("{}/orders", s.base_url())).await;
    assert_eq!(r.status(), StatusCode::OK);
    let log = s.requests();
    assert_eq!(log.len(), 3);
    assert_eq!(
        log.iter().map(|r| r.status).collect::<Vec<_>>(),
        [401, 401, 200]
    );
    assert_eq!(
        log.iter().map(|r| r.authorized).collect::<Vec<_>>(),
        [false, false, true]
    );
    // Health needs no token and is not logged.
    let r = client()
        .get(format!("{}/health", s.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(s.requests().len(), 3);
}

#[tokio::test]
async fn order_pages_cover_every_order_once_in_sort_order() {
    let s = server(DemoConfig::default());
    let expected: Vec<u64> = s.orders_sorted().iter().map(|o| o.id).collect();
    assert_eq!(expected.len(), 250);
    for limit in [25, 100, 1000] {
        assert_eq!(
            walk_orders(&s.base_url(), "", limit).await,
            expected,
            "limit {limit}"
        );
    }
    let first = get_json(&format!("{}/orders", s.base_url())).await;
    let orders = first["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 100, "default page size");
    let o = &orders[0];
    let keys: Vec<&str> = o.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "id",
            "customer_id",
            "external_id",
            "status",
            "total",
            "currency",
            "created_at",
            "updated_at"
        ]
    );
    assert!(o["updated_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(o["currency"], "EUR");
}

#[tokio::test]
async fn updated_at_window_is_inclusive_below_and_exclusive_above() {
    let s = server(DemoConfig::default());
    let sorted = s.orders_sorted();
    let lo = sorted[98].updated_at; // a run of equal timestamps spans 98..=102
    let hi = sorted[200].updated_at;
    let lo_s = demo_api::data::format_ts(lo);
    let hi_s = demo_api::data::format_ts(hi);
    let ids = walk_orders(
        &s.base_url(),
        &format!("&updated_at_gte={lo_s}&updated_at_lt={hi_s}"),
        10,
    )
    .await;
    let expected: Vec<u64> = sorted
        .iter()
        .filter(|o| o.updated_at >= lo && o.updated_at < hi)
        .map(|o| o.id)
        .collect();
    assert_eq!(ids, expected);
    assert!(ids.contains(&sorted[98].id) && ids.contains(&sorted[102].id));
    // `+00:00` sent unencoded (so read as a space) is forgiven.
    let r = get(&format!(
        "{}/orders?updated_at_gte=2024-01-01T00:00:00+00:00",
        s.base_url()
    ))
    .await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn bad_parameters_get_400_with_a_json_message() {
    let s = server(DemoConfig::default());
    for (q, fragment) in [
        ("cursor=garbage", "invalid cursor"),
        ("updated_at_gte=yesterday", "updated_at_gte"),
        ("updated_at_lt=2024-13-01T00:00:00Z", "updated_at_lt"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("sort=id", "sort"),
    ] {
        let r = get(&format!("{}/orders?{q}", s.base_url())).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{q}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["message"].as_str().unwrap().contains(fragment),
            "{q}: {body}"
        );
    }
    let r = get(&format!("{}/nowhere", s.base_url())).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn records_inserted_mid_walk_are_returned_once() {
    let s = server(DemoConfig::default());
    // Before the 3rd page: 5 new orders (at the end of the sort order) and one old order moved
    // further back (before the cursor): no skip, no repeat.
    s.on_request("GET /orders", 3, |st| {
        st.insert_orders(5);
        let first = st.orders_sorted()[0].clone();
        st.touch_order(first.id, first.updated_at - time::Duration::days(1));
    });
    let ids = walk_orders(&s.base_url(), "", 40).await;
    let unique: HashSet<u64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "no repeats");
    assert_eq!(ids.len(), 255);
    assert_eq!(s.orders().len(), 255);
}

#[tokio::test]
async fn items_products_customers_events() {
    let s = server(DemoConfig::default());
    let base = s.base_url();
    let items = get_json(&format!("{base}/orders/1/items")).await;
    let items = items["items"].as_array().unwrap();
    assert!((1..=4).contains(&items.len()));
    assert_eq!(items[0]["line"], 1);
    assert_eq!(items[0]["order_id"], 1);
    assert!(items[0]["sku"].as_str().unwrap().starts_with("SKU-"));
    assert_eq!(
        get(&format!("{base}/orders/99999/items")).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&format!("{base}/orders/abc/items")).await.status(),
        StatusCode::NOT_FOUND
    );

    let mut skus = Vec::new();
    let mut offset = 0;
    loop {
        let p = get_json(&format!("{base}/products?offset={offset}&limit=50")).await;
        assert_eq!(p["total"], 120);
        let page = p["products"].as_array().unwrap();
        skus.extend(page.iter().map(|x| x["sku"].as_str().unwrap().to_string()));
        offset += 50;
        if offset >= 120 {
            break;
        }
    }
    assert_eq!(skus.len(), 120);
    assert_eq!(skus[0], "SKU-0001");
    assert_eq!(
        get_json(&format!("{base}/products")).await["products"]
            .as_array()
            .unwrap()
            .len(),
        50
    );

    let mut customers = 0;
    let mut page = 1;
    loop {
        let p = get_json(&format!("{base}/customers?page={page}&per_page=25")).await;
        assert_eq!(p["total_pages"], 3);
        assert_eq!(p["page"], page);
        customers += p["customers"].as_array().unwrap().len();
        if page == 3 {
            break;
        }
        page += 1;
    }
    assert_eq!(customers, 60);
    assert_eq!(
        get(&format!("{base}/customers?page=0")).await.status(),
        StatusCode::BAD_REQUEST
    );

    let mut url = format!("{base}/events?limit=100");
    let mut ids = Vec::new();
    let mut pages = 0;
    loop {
        let r = get(&url).await;
        let link = r
            .headers()
            .get("link")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(link.contains("rel=\"first\""), "{link}");
        let events: Value = r.json().await.unwrap();
        ids.extend(
            events
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_u64().unwrap()),
        );
        pages += 1;
        let next = link
            .split(", ")
            .find(|l| l.ends_with("rel=\"next\""))
            .map(|l| l.split(['<', '>']).nth(1).unwrap().to_string());
        match next {
            Some(n) => {
                assert!(n.starts_with("http://"), "absolute: {n}");
                url = n;
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(ids, (1..=230).collect::<Vec<u64>>());
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let s = server(DemoConfig {
        rate_limit: 3,
        rate_window: Duration::from_secs(3600),
        ..DemoConfig::default()
    });
    let url = format!("{}/products", s.base_url());
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let r = get(&url).await;
        assert_eq!(r.status(), StatusCode::OK);
        remaining.push(
            r.headers()["x-ratelimit-remaining"]
                .to_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let r = get(&url).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry));
    let reset: u64 = r.headers()["x-ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(reset > now && reset <= now + 3600);
}

#[tokio::test]
async fn scripted_window_counts_requests_sent_while_remaining_is_zero() {
    let s = server(DemoConfig::default());
    s.set_window(2, SystemTime::now() + Duration::from_secs(30));
    let url = format!("{}/products", s.base_url());
    let a = get(&url).await;
    let b = get(&url).await;
    assert_eq!(a.headers()["x-ratelimit-remaining"], "1");
    assert_eq!(b.headers()["x-ratelimit-remaining"], "0");
    assert_eq!(s.window_violations(), 0);
    let c = get(&url).await;
    assert_eq!(c.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(s.window_violations(), 1);
    s.clear_window();
    assert_eq!(get(&url).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn status_faults_and_rate_limit_header_faults() {
    let s = server(DemoConfig::default());
    let base = s.base_url();
    s.push_fault("/orders", Fault::retry_after_secs(429, 1));
    s.push_fault(
        "/orders",
        Fault::retry_after_date(503, SystemTime::now() + Duration::from_secs(2)),
    );
    s.push_fault(
        "/products",
        Fault::RateLimitHeaders {
            remaining: 0,
            reset: 1_900_000_000,
        },
    );
    let r = get(&format!("{base}/orders")).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "1");
    let r = get(&format!("{base}/orders")).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .ends_with("GMT")
    );
    let r = get(&format!("{base}/products")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    assert_eq!(r.headers()["x-ratelimit-reset"], "1900000000");
    assert_eq!(
        get(&format!("{base}/orders")).await.status(),
        StatusCode::OK
    );
    let log = s.requests();
    let faults: Vec<Option<&str>> = log.iter().map(|r| r.fault.as_deref()).collect();
    assert_eq!(
        faults,
        [
            Some("status"),
            Some("status"),
            Some("rate_limit_headers"),
            None
        ]
    );
    assert_eq!(s.pending_faults(), 0);
}

#[tokio::test]
async fn connection_faults_are_seen_by_the_client() {
    let s = server(DemoConfig::default());
    let url = format!("{}/orders", s.base_url());

    s.push_fault("/orders", Fault::Close);
    let err = get_result(&url).await.unwrap_err();
    assert!(!err.is_status(), "no status line: {err}");

    s.push_fault("/orders", Fault::DropMidBody);
    let r = get(&url).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.bytes().await.is_err(), "body must fail");

    s.push_fault("/orders", Fault::Truncated);
    let r = get(&url).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.bytes().await.is_err(), "body must fail");

    s.push_fault("/orders", Fault::CutJson);
    let r = get(&url).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.bytes().await.unwrap();
    assert!(serde_json::from_slice::<Value>(&body).is_err());
    assert!(body.starts_with(b"{\"orders\":["));

    s.push_fault("/orders", Fault::slow(Duration::from_millis(300)));
    let t = Instant::now();
    assert_eq!(get(&url).await.status(), StatusCode::OK);
    assert!(t.elapsed() >= Duration::from_millis(300));

    // The server is still fine afterwards, and the log shows each fault.
    assert_eq!(get(&url).await.status(), StatusCode::OK);
    let log = s.requests();
    let seen: Vec<(u16, Option<&str>)> =
        log.iter().map(|r| (r.status, r.fault.as_deref())).collect();
    assert_eq!(
        seen,
        [
            (0, Some("close")),
            (200, Some("drop_mid_body")),
            (200, Some("truncated")),
            (200, Some("cut_json")),
            (200, Some("slow")),
            (200, None)
        ]
    );
}

async fn get_result(url: &str) -> reqwest::Result<reqwest::Response> {
    client().get(url).bearer_auth(TOKEN).send().await
}

async fn post_order(
    base: &str,
    key: Option<&str>,
    body: &Value,
) -> reqwest::Result<reqwest::Response> {
    let mut req = client()
        .post(format!("{base}/orders"))
        .bearer_auth(TOKEN)
        .json(body);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    req.send().await
}

#[tokio::test]
async fn idempotent_create_semantics() {
    let s = server(DemoConfig::default());
    let base = s.base_url();
    let body = json!({"customer_id": 3, "external_id": "A-1", "total": 12.5});
    let r = post_order(&base, None, &body).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let r = post_order(&base, Some("k1"), &body).await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(r.headers().get("idempotent-replayed").is_none());
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["id"], 251);
    assert_eq!(first["external_id"], "A-1");

    // Same key, same body (keys reordered): replayed.
    let same = json!({"total": 12.5, "external_id": "A-1", "customer_id": 3});
    let r = post_order(&base, Some("k1"), &same).await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    assert_eq!(r.json::<Value>().await.unwrap(), first);

    // Same key, other body: 422.
    let other = json!({"customer_id": 3, "external_id": "A-2"});
    let r = post_order(&base, Some("k1"), &other).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Invalid body: 400, and the key is not burnt.
    let r = post_order(&base, Some("k2"), &json!({"external_id": "x"}))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = post_order(&base, Some("k2"), &other).await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    assert_eq!(s.created_count(), 2);
    assert_eq!(s.order(251).unwrap().external_id, "A-1");
    // Created orders show up in the orders stream.
    let ids = walk_orders(&base, "", 100).await;
    assert!(ids.ends_with(&[251, 252]) || ids.ends_with(&[252, 251]));
}

#[tokio::test]
async fn a_retry_while_in_flight_gets_409() {
    let s = server(DemoConfig {
        processing_delay: Duration::from_secs(2),
        ..DemoConfig::default()
    });
    let base = s.base_url();
    let body = json!({"customer_id": 1, "external_id": "slow"});
    let first = {
        let base = base.clone();
        let body = body.clone();
        tokio::spawn(async move {
            post_order(&base, Some("slow-key"), &body)
                .await
                .unwrap()
                .status()
        })
    };
    // Send the retry once the first request has reached the server (it is then in flight
    // for 2 s), rather than after a guessed sleep.
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.requests().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Logged on arrival, so leave it a moment to reach the key store.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = post_order(&base, Some("slow-key"), &body).await.unwrap();
    assert_eq!(second.status(), StatusCode::CONFLICT);
    assert_eq!(first.await.unwrap(), StatusCode::CREATED);
    let third = post_order(&base, Some("slow-key"), &body).await.unwrap();
    assert_eq!(third.headers()["idempotent-replayed"], "true");
    assert_eq!(s.created_count(), 1);
}

#[tokio::test]
async fn commit_then_drop_then_retry_creates_one_order() {
    let s = server(DemoConfig::default());
    let base = s.base_url();
    let body = json!({"customer_id": 9, "external_id": "drop-1"});
    s.push_fault("POST /orders", Fault::CommitThenDrop);
    let err = post_order(&base, Some("drop-key"), &body)
        .await
        .unwrap_err();
    assert!(!err.is_status(), "{err}");
    assert_eq!(s.created_count(), 1, "the write was committed");
    let r = post_order(&base, Some("drop-key"), &body).await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["id"], s.created_orders()[0].id);
    assert_eq!(s.created_count(), 1);
    let log = s.requests();
    assert_eq!(log[0].idempotency_key.as_deref(), Some("drop-key"));
    assert_eq!(
        (log[0].status, log[0].fault.as_deref()),
        (0, Some("commit_then_drop"))
    );
}

/// Deliveries received: headers (names lowercase) and the raw body.
type Deliveries = Arc<Mutex<Vec<(Vec<(String, String)>, Vec<u8>)>>>;

/// A receiver that records every delivery.
async fn receiver() -> (String, Deliveries) {
    use axum::body::Bytes;
    use axum::http::HeaderMap;
    let got: Deliveries = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let sink = sink.clone();
            async move {
                let h = headers
                    .iter()
                    .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect();
                sink.lock().unwrap().push((h, body.to_vec()));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> &'a str {
    h.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_under_each_scheme() {
    for (scheme, secret) in [
        (Scheme::HmacSha256, "shh"),
        (Scheme::Stripe, "whsec_stripe_like"),
        (
            Scheme::StandardWebhooks,
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        ),
    ] {
        let (url, got) = receiver().await;
        let s = server(DemoConfig {
            webhook: Some(WebhookConfig::new(url, secret, scheme)),
            ..DemoConfig::default()
        });
        s.touch_order(7, demo_api::data::parse_ts("2025-01-01T00:00:00Z").unwrap())
            .unwrap();
        s.webhook_demo(3);
        let deadline = Instant::now() + Duration::from_secs(10);
        // The sender counts a delivery after the receiver's answer reaches it: wait for both.
        while (got.lock().unwrap().len() < 4 || s.webhook_stats().delivered < 4)
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let got = got.lock().unwrap().clone();
        assert_eq!(got.len(), 4, "{scheme}");
        assert_eq!(s.webhook_stats().delivered, 4);
        let mut ids = HashSet::new();
        for (h, body) in &got {
            let v: Value = serde_json::from_slice(body).unwrap();
            assert!(ids.insert(v["id"].as_str().unwrap().to_string()));
            assert_eq!(v["type"], "order.updated");
            assert!(v["data"]["updated_at"].is_string());
            match scheme {
                Scheme::HmacSha256 => {
                    assert_eq!(
                        header(h, "x-signature-sha256"),
                        sign::hmac_sha256_header(secret, body).unwrap()
                    );
                }
                Scheme::Stripe => {
                    let sig = header(h, "stripe-signature");
                    let ts: i64 = sig
                        .strip_prefix("t=")
                        .unwrap()
                        .split(',')
                        .next()
                        .unwrap()
                        .parse()
                        .unwrap();
                    assert_eq!(sig, sign::stripe_signature(secret, ts, body).unwrap());
                }
                Scheme::StandardWebhooks => {
                    let id = header(h, "webhook-id");
                    assert_eq!(id, v["id"].as_str().unwrap());
                    let ts: i64 = header(h, "webhook-timestamp").parse().unwrap();
                    assert_eq!(
                        header(h, "webhook-signature"),
                        sign::standard_webhooks_signature(secret, id, ts, body).unwrap()
                    );
                }
            }
        }
        s.shutdown().await;
    }
}

#[test]
fn bad_standard_webhooks_secret_is_refused_at_start() {
    let err = spawn(DemoConfig {
        webhook: Some(WebhookConfig::new(
            "http://127.0.0.1:9/x",
            "whsec_%%%",
            Scheme::StandardWebhooks,
        )),
        ..DemoConfig::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("base64"), "{err}");
    assert!(!err.to_string().contains("%%%"), "no secret in errors");
}

#[test]
fn blocking_use_and_shutdown() {
    let s = server(DemoConfig::with_orders(10));
    let addr = s.addr();
    assert_eq!(s.orders().len(), 10);
    s.shutdown_blocking();
    assert!(std::net::TcpStream::connect(addr).is_err(), "stopped");
}

//! Webhooks: the Postgres outbox, signed delivery, retries with backoff, dead endpoints and
//! concurrent deliverers, against the real Postgres and a local HTTP receiver.
//!
//! Backoff is real (`next_attempt_at` moves into the future after a failure); to avoid waiting it
//! out, tests set `next_attempt_at = now()` between rounds.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use serde_json::Value;
use shared::{
    config::Config,
    metrics::{self, Metrics},
    secret::Secret,
    webhooks::{self, MAX_ATTEMPTS, StatusChange},
};
use tests::{TestEnv, logs};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A Standard Webhooks secret: `whsec_` and the base64 key ("fb-token-refresh webhook test key").
const SECRET: &str = "whsec_ZmItdG9rZW4tcmVmcmVzaCB3ZWJob29rIHRlc3Qga2V5";

/// How the receiver answers one request.
#[derive(Clone, Copy, Debug)]
enum Answer {
    Status(u16),
    /// Reads the request, then never answers (an endpoint that hangs).
    Hang,
}

#[derive(Clone, Debug)]
struct Received {
    path: String,
    /// Lowercase names.
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

#[derive(Default)]
struct ReceiverState {
    received: Vec<Received>,
    /// Answers for the next requests, in order; then `default`.
    plan: VecDeque<Answer>,
}

/// A minimal HTTP/1.1 endpoint on port 0 that records every request (the tests crate has no HTTP
/// server dependency of its own, so it speaks just enough HTTP by hand).
struct Receiver {
    base: String,
    state: Arc<Mutex<ReceiverState>>,
    accept: JoinHandle<()>,
}

impl Receiver {
    async fn start(default: Answer, plan: &[Answer], delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(ReceiverState { received: vec![], plan: plan.iter().copied().collect() }));
        let shared = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, state, default, delay).await;
                });
            }
        });
        Self { base, state, accept }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn received(&self) -> Vec<Received> {
        self.state.lock().expect("receiver state").received.clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn serve(
    mut stream: TcpStream,
    state: Arc<Mutex<ReceiverState>>,
    default: Answer,
    delay: Duration,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let path = lines.next().and_then(|l| l.split(' ').nth(1)).unwrap_or("").to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[head_end..head_end + length].to_vec();
    let answer = {
        let mut s = state.lock().expect("receiver state");
        s.received.push(Received { path, headers, body });
        s.plan.pop_front().unwrap_or(default)
    };
    tokio::time::sleep(delay).await;
    match answer {
        Answer::Hang => {
            tokio::time::sleep(Duration::from_secs(120)).await;
            Ok(())
        }
        Answer::Status(code) => {
            let response = format!("HTTP/1.1 {code} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
            stream.write_all(response.as_bytes()).await?;
            stream.shutdown().await
        }
    }
}

async fn env_with_urls(urls: Vec<String>) -> TestEnv {
    TestEnv::with(move |c| {
        c.webhook_urls = urls;
        c.webhook_secret = Some(Secret::new(SECRET));
    })
    .await
}

fn change(channel_id: i64, page_id: &str, from: &str, to: &str) -> StatusChange {
    let error = (to == "reauthorization_required")
        .then(|| (Some(190), Some(460), "Error validating access token: password changed".to_owned()));
    StatusChange { channel_id, page_id: page_id.into(), from: from.into(), to: to.into(), error, at: Utc::now() }
}

#[derive(Debug, sqlx::FromRow)]
struct Row {
    url: String,
    attempts: i32,
    next_attempt_at: DateTime<Utc>,
    delivered_at: Option<DateTime<Utc>>,
    given_up_at: Option<DateTime<Utc>>,
    last_status: Option<i32>,
    last_error: Option<String>,
}

async fn rows(env: &TestEnv) -> Vec<Row> {
    sqlx::query_as(
        "SELECT url, attempts, next_attempt_at, delivered_at, given_up_at, last_status, last_error
         FROM fb_webhook_deliveries ORDER BY id",
    )
    .fetch_all(&env.db)
    .await
    .expect("rows")
}

async fn make_due_now(env: &TestEnv) {
    sqlx::query("UPDATE fb_webhook_deliveries SET next_attempt_at = now() WHERE delivered_at IS NULL")
        .execute(&env.db)
        .await
        .expect("make due");
}

async fn deliver(env: &TestEnv, metrics: Option<&Metrics>) -> usize {
    webhooks::deliver_due(&env.db, &reqwest::Client::new(), &env.config, metrics, 100).await.expect("deliver")
}

#[tokio::test]
async fn a_status_change_is_delivered_signed_and_without_tokens() {
    let rx = Receiver::start(Answer::Status(200), &[], Duration::ZERO).await;
    let env = env_with_urls(vec![rx.url("/hooks/fb?key=abc")]).await;
    let (ch, _, user_token) = env.healthy_channel("61001").await;
    let page_token = env.stored_page_token(ch).await;

    let mut c = change(ch, "61001", "retrying", "reauthorization_required");
    c.at = "2026-03-04T05:06:07Z".parse().expect("time");
    assert_eq!(webhooks::enqueue(&env.db, &env.config, &c).await.expect("enqueue"), 1);
    let metrics = Metrics::default();
    assert_eq!(deliver(&env, Some(&metrics)).await, 1);

    let got = rx.received();
    assert_eq!(got.len(), 1);
    let req = &got[0];
    assert_eq!(req.path, "/hooks/fb?key=abc");
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.header("x-webhook-event"), Some("token.reauthorization_required"));
    let expected_signature = webhooks::signature(&Secret::new(SECRET), &req.body);
    assert_eq!(req.header("x-signature-256"), Some(expected_signature.as_str()));
    assert!(expected_signature.starts_with("sha256=") && expected_signature.len() == 7 + 64);
    assert_ne!(
        req.header("x-signature-256"),
        Some(webhooks::signature(&Secret::new("another secret"), &req.body).as_str())
    );

    let body = req.json();
    assert_eq!(body["event"], "token.reauthorization_required");
    assert_eq!(body["event_id"].as_str(), req.header("x-webhook-id"));
    assert!(body["event_id"].as_str().and_then(|s| s.parse::<Uuid>().ok()).is_some(), "{body}");
    assert_eq!(body["channel_id"], ch);
    assert_eq!(body["page_id"], "61001");
    assert_eq!(body["from"], "retrying");
    assert_eq!(body["to"], "reauthorization_required");
    assert_eq!(body["occurred_at"], "2026-03-04T05:06:07+00:00");
    assert_eq!(body["error"]["code"], 190);
    assert_eq!(body["error"]["subcode"], 460);
    assert_eq!(body["error"]["message"], "Error validating access token: password changed");
    let text = String::from_utf8_lossy(&req.body);
    assert!(!text.contains(&page_token) && !text.contains(&user_token), "{text}");
    assert!(!text.contains("access_token"), "{text}");

    let row = &rows(&env).await[0];
    assert!(row.delivered_at.is_some());
    assert_eq!((row.attempts, row.last_status, row.last_error.as_deref()), (1, Some(200), None));
    assert!(metrics::render(&metrics).contains("fb_token_webhooks_total{outcome=\"delivered\"} 1"));

    // Delivered rows are never sent again.
    make_due_now(&env).await;
    assert_eq!(deliver(&env, None).await, 0);
    assert_eq!(rx.received().len(), 1);
}

/// Checks a Standard Webhooks signature as a receiver would, with its own HMAC (not the code under
/// test): `webhook-signature` holds space-separated `v1,<base64>` values over `{id}.{ts}.{body}`.
fn standard_signature_valid(key: &[u8], id: &str, timestamp: &str, signatures: &str, body: &[u8]) -> bool {
    use base64::Engine as _;
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    signatures.split(' ').filter_map(|s| s.strip_prefix("v1,")).any(|b64| {
        base64::engine::general_purpose::STANDARD.decode(b64).is_ok_and(|sig| mac.clone().verify_slice(&sig).is_ok())
    })
}

#[tokio::test]
async fn webhooks_carry_a_standard_webhooks_signature_a_receiver_can_verify() {
    use base64::Engine as _;
    let rx = Receiver::start(Answer::Status(200), &[], Duration::ZERO).await;
    let mut env = env_with_urls(vec![rx.url("/hooks/std")]).await;
    let (ch, _, _) = env.healthy_channel("61101").await;
    // `whsec_` secrets are the spec's format: the key is the base64-decoded rest.
    let whsec_key = base64::engine::general_purpose::STANDARD
        .decode(SECRET.strip_prefix("whsec_").expect("whsec_ secret"))
        .expect("base64");
    // Any other secret keys the HMAC with its bytes as written.
    let plain = "plain shared secret";
    for (secret, key) in [(SECRET, whsec_key.clone()), (plain, plain.as_bytes().to_vec())] {
        env.config.webhook_secret = Some(Secret::new(secret));
        let c = change(ch, "61101", "healthy", "reauthorization_required");
        assert_eq!(webhooks::enqueue(&env.db, &env.config, &c).await.expect("enqueue"), 1);
        let before = Utc::now().timestamp();
        assert_eq!(deliver(&env, None).await, 1);
        let after = Utc::now().timestamp();
        let got = rx.received();
        let req = got.last().expect("a request");

        let id = req.header("webhook-id").expect("webhook-id");
        assert_eq!(Some(id), req.json()["event_id"].as_str(), "webhook-id is the event id");
        assert_eq!(Some(id), req.header("x-webhook-id"));
        let ts = req.header("webhook-timestamp").expect("webhook-timestamp");
        let ts_secs: i64 = ts.parse().expect("Unix seconds");
        assert!(
            (before - 1..=after + 1).contains(&ts_secs),
            "timestamp {ts_secs} is the send time ({before}..{after})"
        );
        let sig = req.header("webhook-signature").expect("webhook-signature");
        assert!(sig.starts_with("v1,"), "{sig}");
        assert!(standard_signature_valid(&key, id, ts, sig, &req.body), "{secret}: {sig}");

        // What a receiver must reject: another body, another timestamp (a replay re-dated),
        // another id, another key.
        let mut tampered = req.body.clone();
        let at = tampered.iter().position(|b| b.is_ascii_digit()).expect("a digit in the body");
        tampered[at] = if tampered[at] == b'9' { b'8' } else { tampered[at] + 1 };
        assert!(!standard_signature_valid(&key, id, ts, sig, &tampered), "tampered body");
        assert!(!standard_signature_valid(&key, id, &(ts_secs - 600).to_string(), sig, &req.body), "old timestamp");
        assert!(!standard_signature_valid(&key, &Uuid::now_v7().to_string(), ts, sig, &req.body), "other id");
        assert!(!standard_signature_valid(b"wrong key", id, ts, sig, &req.body), "other key");
        // The GitHub-style header is still there, keyed by the secret as written.
        assert_eq!(req.header("x-signature-256"), Some(webhooks::signature(&Secret::new(secret), &req.body).as_str()));
    }
    assert_ne!(whsec_key, SECRET.as_bytes(), "the two cases use different keys");
}

#[tokio::test]
async fn back_to_healthy_is_an_event_of_its_own_for_every_endpoint() {
    let rx = Receiver::start(Answer::Status(204), &[], Duration::ZERO).await;
    let env = env_with_urls(vec![rx.url("/a"), rx.url("/b")]).await;
    let c = change(42, "61002", "reauthorization_required", "refreshed");
    assert_eq!(webhooks::enqueue(&env.db, &env.config, &c).await.expect("enqueue"), 2);
    assert_eq!(deliver(&env, None).await, 2);
    let got = rx.received();
    let paths: HashSet<&str> = got.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, HashSet::from(["/a", "/b"]));
    for req in &got {
        assert_eq!(req.header("x-webhook-event"), Some("token.healthy"));
        let body = req.json();
        assert_eq!((body["event"].as_str(), body["error"].is_null()), (Some("token.healthy"), true));
    }
    assert_eq!(got[0].header("x-webhook-id"), got[1].header("x-webhook-id"), "one event, one id");

    let expiring = change(42, "61002", "healthy", "data_access_expiring");
    assert_eq!(webhooks::enqueue(&env.db, &env.config, &expiring).await.expect("enqueue"), 2);
    assert_eq!(deliver(&env, None).await, 2);
    assert!(rx.received()[2..].iter().all(|r| r.header("x-webhook-event") == Some("token.data_access_expiring")));
}

#[tokio::test]
async fn a_failing_endpoint_is_retried_with_backoff_until_it_answers() {
    let rx = Receiver::start(Answer::Status(200), &[Answer::Status(500), Answer::Status(500)], Duration::ZERO).await;
    let env = env_with_urls(vec![rx.url("/hook")]).await;
    let metrics = Metrics::default();
    webhooks::enqueue(&env.db, &env.config, &change(7, "61003", "healthy", "reauthorization_required"))
        .await
        .expect("enqueue");

    assert_eq!(deliver(&env, Some(&metrics)).await, 1);
    let row = &rows(&env).await[0];
    assert_eq!(
        (row.attempts, row.last_status, row.last_error.as_deref()),
        (1, Some(500), Some("HTTP 500 Internal Server Error"))
    );
    assert!(row.delivered_at.is_none());
    // RETRY_* in tests: 1 s doubling, no jitter.
    let wait = row.next_attempt_at - Utc::now();
    assert!(wait > chrono::Duration::milliseconds(500) && wait <= chrono::Duration::seconds(1), "{wait:?}");
    assert_eq!(deliver(&env, None).await, 0, "not due before its backoff");

    make_due_now(&env).await;
    assert_eq!(deliver(&env, Some(&metrics)).await, 1);
    let row = &rows(&env).await[0];
    assert_eq!((row.attempts, row.last_status), (2, Some(500)));
    let wait = row.next_attempt_at - Utc::now();
    assert!(wait > chrono::Duration::milliseconds(1500) && wait <= chrono::Duration::seconds(2), "{wait:?}");

    make_due_now(&env).await;
    assert_eq!(deliver(&env, Some(&metrics)).await, 1);
    let row = &rows(&env).await[0];
    assert!(row.delivered_at.is_some());
    assert_eq!((row.attempts, row.last_status, row.last_error.as_deref()), (3, Some(200), None));

    let got = rx.received();
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|r| r.body == got[0].body && r.header("x-webhook-id") == got[0].header("x-webhook-id")));
    let text = metrics::render(&metrics);
    assert!(text.contains("fb_token_webhooks_total{outcome=\"failed\"} 2"), "{text}");
    assert!(text.contains("fb_token_webhooks_total{outcome=\"delivered\"} 1"), "{text}");
}

#[tokio::test]
async fn a_dead_endpoint_holds_up_neither_the_live_one_nor_the_caller() {
    let live = Receiver::start(Answer::Status(200), &[], Duration::ZERO).await;
    // Hangs on the first request, answers later ones (it recovered).
    let hanging = Receiver::start(Answer::Status(200), &[Answer::Hang], Duration::ZERO).await;
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}/hook", l.local_addr().expect("addr"))
        // Dropped here: nothing listens on that port any more.
    };
    let hanging_url = hanging.url("/hook?key=topsecret").replace("http://", "http://ops:hunter2@");
    let env = env_with_urls(vec![hanging_url, refused, live.url("/hook")]).await;
    let (captured, _guard) = logs::capture();

    let started = std::time::Instant::now();
    assert_eq!(
        webhooks::enqueue(&env.db, &env.config, &change(9, "61004", "healthy", "reauthorization_required"))
            .await
            .expect("enqueue"),
        3
    );
    assert!(started.elapsed() < Duration::from_secs(1), "enqueue only inserts");

    let (db, config) = (env.db.clone(), env.config.clone());
    let round = tokio::spawn(async move {
        webhooks::deliver_due(&db, &reqwest::Client::new(), &config, None, 10).await.expect("deliver")
    });
    // The live endpoint is served, and the refused one settled, while the hanging one still holds
    // its request (REQUEST_TIMEOUT is 10 s).
    let mut settled = false;
    for _ in 0..60 {
        let now = rows(&env).await;
        settled = now[2].delivered_at.is_some() && now[1].attempts == 1;
        if settled {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(settled, "the live endpoint was delivered in the first round: {:?}", rows(&env).await);
    assert!(!round.is_finished(), "the hanging endpoint is still being waited for");
    let refused_now = &rows(&env).await[1];
    assert!(refused_now.next_attempt_at > Utc::now(), "the refused one waits for its backoff: {refused_now:?}");
    assert_eq!(hanging.received().len(), 1);

    assert_eq!(round.await.expect("round"), 3);
    let all = rows(&env).await;
    let (hung, refused, live_row) = (&all[0], &all[1], &all[2]);
    assert!(live_row.delivered_at.is_some() && live_row.attempts == 1);
    for dead in [hung, refused] {
        assert!(dead.delivered_at.is_none() && dead.given_up_at.is_none(), "{dead:?}");
        assert_eq!((dead.attempts, dead.last_status), (1, None), "{dead:?}");
    }
    assert!(hung.next_attempt_at > Utc::now(), "retried later: {hung:?}");
    let hung_error = hung.last_error.clone().unwrap_or_default();
    assert!(hung_error.starts_with("timeout"), "{hung_error}");
    assert!(refused.last_error.as_deref().unwrap_or_default().starts_with("connection failed"), "{refused:?}");
    let text = captured.text();
    for secret in ["topsecret", "hunter2"] {
        assert!(!hung_error.contains(secret), "{hung_error}");
        assert!(!text.contains(secret), "{text}");
    }
    assert!(text.contains("webhook delivery failed"), "{text}");

    // The dead ones come back once due (the hanging one has recovered); the live one is not sent
    // again.
    make_due_now(&env).await;
    let retried =
        webhooks::deliver_due(&env.db, &reqwest::Client::new(), &env.config, None, 10).await.expect("deliver");
    assert_eq!(retried, 2);
    assert_eq!(live.received().len(), 1);
    let all = rows(&env).await;
    assert!(all[0].delivered_at.is_some() && all[0].attempts == 2, "{:?}", all[0]);
    assert!(all[1].delivered_at.is_none() && all[1].attempts == 2, "{:?}", all[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_deliverers_deliver_each_event_exactly_once() {
    let rx = Receiver::start(Answer::Status(200), &[], Duration::from_millis(5)).await;
    let env = env_with_urls(vec![rx.url("/a"), rx.url("/b")]).await;
    for i in 0..60 {
        let c = change(1_000 + i, &format!("62{i:03}"), "retrying", "healthy");
        assert_eq!(webhooks::enqueue(&env.db, &env.config, &c).await.expect("enqueue"), 2);
    }
    let deliverer = |env: &TestEnv| {
        let (db, config) = (env.db.clone(), env.config.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut claimed = 0;
            loop {
                match webhooks::deliver_due(&db, &http, &config, None, 8).await.expect("deliver") {
                    0 => break claimed,
                    n => claimed += n,
                }
            }
        })
    };
    let (a, b) = (deliverer(&env), deliverer(&env));
    let (a, b) = (a.await.expect("a"), b.await.expect("b"));
    assert_eq!(a + b, 120, "a claimed {a}, b claimed {b}");

    let got = rx.received();
    assert_eq!(got.len(), 120);
    let unique: HashSet<(String, String)> =
        got.iter().map(|r| (r.path.clone(), r.header("x-webhook-id").unwrap_or_default().to_owned())).collect();
    assert_eq!(unique.len(), 120, "no event was delivered twice to one endpoint");
    assert!(rows(&env).await.iter().all(|r| r.delivered_at.is_some() && r.attempts == 1));
}

#[tokio::test]
async fn without_webhook_urls_nothing_is_enqueued() {
    let env = TestEnv::new().await;
    assert!(env.config.webhook_urls.is_empty());
    let c = change(5, "61005", "healthy", "reauthorization_required");
    assert_eq!(webhooks::enqueue(&env.db, &env.config, &c).await.expect("enqueue"), 0);
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM fb_webhook_deliveries").fetch_one(&env.db).await.expect("count");
    assert_eq!(count, 0);
    assert_eq!(deliver(&env, None).await, 0);
}

#[tokio::test]
async fn a_change_that_is_no_event_enqueues_nothing() {
    let env = env_with_urls(vec!["http://127.0.0.1:9/hook".into()]).await;
    for (from, to) in [("healthy", "refreshed"), ("none", "healthy"), ("healthy", "retrying"), ("healthy", "healthy")] {
        assert_eq!(webhooks::enqueue(&env.db, &env.config, &change(5, "61006", from, to)).await.expect("enqueue"), 0);
    }
    assert!(rows(&env).await.is_empty());
}

#[tokio::test]
async fn a_row_is_given_up_after_the_last_attempt() {
    let rx = Receiver::start(Answer::Status(503), &[], Duration::ZERO).await;
    let env = env_with_urls(vec![rx.url("/hook")]).await;
    let metrics = Metrics::default();
    webhooks::enqueue(&env.db, &env.config, &change(3, "61007", "healthy", "reauthorization_required"))
        .await
        .expect("enqueue");
    sqlx::query("UPDATE fb_webhook_deliveries SET attempts = $1")
        .bind(MAX_ATTEMPTS - 1)
        .execute(&env.db)
        .await
        .expect("set");
    assert_eq!(deliver(&env, Some(&metrics)).await, 1);
    let row = &rows(&env).await[0];
    assert!(row.given_up_at.is_some() && row.delivered_at.is_none(), "{row:?}");
    assert_eq!((row.attempts, row.last_status), (MAX_ATTEMPTS, Some(503)));
    assert!(row.url.ends_with("/hook"));
    make_due_now(&env).await;
    assert_eq!(deliver(&env, None).await, 0, "a given-up row is never sent again");
    assert!(metrics::render(&metrics).contains("fb_token_webhooks_total{outcome=\"given_up\"} 1"));
}

#[tokio::test]
async fn run_delivery_delivers_in_the_background_and_stops_on_cancel() {
    let rx = Receiver::start(Answer::Status(200), &[], Duration::ZERO).await;
    let env = env_with_urls(vec![rx.url("/hook")]).await;
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(webhooks::run_delivery(
        env.db.clone(),
        Arc::new(env.config.clone()),
        Some(Metrics::default()),
        shutdown.clone(),
    ));
    for i in 0..40 {
        let c = change(2_000 + i, "61008", "reauthorization_required", "healthy");
        webhooks::enqueue(&env.db, &env.config, &c).await.expect("enqueue");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while rx.received().len() < 40 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(rx.received().len(), 40);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("stops promptly").expect("no panic");
    assert!(rows(&env).await.iter().all(|r| r.delivered_at.is_some()));
}

/// `Config` built from the environment carries the webhook settings through.
#[test]
fn webhook_settings_come_from_the_environment() {
    let c = Config::from_lookup(|k| match k {
        "WEBHOOK_URLS" => Some("https://a.example.com/h, https://b.example.com/h".into()),
        "WEBHOOK_SECRET" => Some("s".into()),
        _ => None,
    })
    .expect("valid");
    assert_eq!(c.webhook_urls.len(), 2);
    assert!(c.webhook_secret.is_some());
}

/// The pipeline queues an event when a channel's status changes (flagged, and healthy again) and
/// when its data access starts expiring; nothing for a plain healthy re-check.
#[tokio::test]
async fn status_changes_in_the_pipeline_queue_events() {
    let env = tests::TestEnv::with(|c| {
        c.webhook_urls = vec!["http://127.0.0.1:9/hook".into()];
        c.authorization_error_threshold = 1;
    })
    .await;
    let (ch, user, user_token) = env.healthy_channel("301001").await;
    let run = |reason| {
        let p = env.pipeline();
        async move { p.process(&shared::job::RefreshJob::new(ch, reason)).await.expect("stores") }
    };
    run(shared::job::Reason::Cron).await;
    run(shared::job::Reason::Cron).await;
    env.sim.kill_page_token("301001", &user, 190, Some(460), "password changed");
    env.sim.kill_user_token(&user_token, 190, Some(460), "password changed");
    run(shared::job::Reason::Cron).await;
    let events: Vec<String> = sqlx::query_scalar("SELECT body->>'event' FROM fb_webhook_deliveries ORDER BY id")
        .fetch_all(&env.db)
        .await
        .expect("db");
    assert_eq!(events, vec!["token.reauthorization_required"], "first healthy is not a change; flagged is");
    let now = chrono::Utc::now().timestamp();
    env.sim.set_user_token_expiry(&user_token, 0, now + 2 * 86_400);
    let _ =
        env.pipeline().proactive_check(ch, std::time::Duration::from_secs(10 * 86_400), true).await.expect("stores");
    let events: Vec<String> = sqlx::query_scalar("SELECT body->>'event' FROM fb_webhook_deliveries ORDER BY id")
        .fetch_all(&env.db)
        .await
        .expect("db");
    assert_eq!(events.last().map(String::as_str), Some("token.data_access_expiring"), "{events:?}");
}

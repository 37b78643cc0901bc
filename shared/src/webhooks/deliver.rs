use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt;
use sqlx::PgPool;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};
use uuid::Uuid;

use crate::graph::describe_transport as describe;
use crate::signing as signature;
use crate::{
    config::Config,
    metrics::Metrics,
    store::outbox::{self, endpoint_hash, redact_url},
};

/// How long a claimed row stays invisible to other deliverers; a deliverer that dies mid-POST gives
/// its rows back after this. Well above `REQUEST_TIMEOUT`, so a live deliverer always finishes first.
pub const LEASE: Duration = Duration::from_secs(60);

/// Total time one POST may take (connect, send, answer).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// POSTs in flight at once within one [`deliver_due`] call; also the batch `run_delivery` claims.
pub const CONCURRENCY: usize = 16;

/// Failed attempts after which a row is given up (`given_up_at` set, never sent again). With the
/// default `RETRY_*` policy (1 s doubling, capped at 60 s) that is about 15 minutes of retries.
pub const MAX_ATTEMPTS: i32 = 20;

/// How often `run_delivery` looks for due rows when the last round found no full batch.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// `deliver_due` rounds `run_delivery` keeps going at once, so a round waiting on an endpoint that
/// hangs does not hold back events that arrive meanwhile.
const ROUNDS_IN_FLIGHT: usize = 4;

/// One claimed row.
struct Claimed {
    id: i64,
    event_id: Uuid,
    /// Where to POST: the `WEBHOOK_URLS` entry the row's hash names; `None` when that endpoint is
    /// no longer configured.
    url: Option<String>,
    /// The endpoint as logs and `last_error` may show it.
    endpoint: String,
    event: String,
    body: String,
    attempts: i32,
}

/// What one POST came to.
enum Sent {
    Delivered(u16),
    Failed { status: Option<u16>, error: String },
}

/// Claims up to `limit` due, undelivered rows (`FOR UPDATE SKIP LOCKED`, leased for [`LEASE`] in the
/// same statement) and POSTs them, up to [`CONCURRENCY`] at once, each within [`REQUEST_TIMEOUT`].
/// A 2xx marks a row delivered; anything else schedules the next attempt after
/// `config.retry.backoff(attempts)`, or gives the row up after [`MAX_ATTEMPTS`]. Returns the number
/// of rows claimed (attempted); `limit` means more may be due. An error is Postgres failing; rows
/// it left claimed come back when their lease ends.
pub async fn deliver_due(
    db: &PgPool,
    http: &reqwest::Client,
    config: &Config,
    metrics: Option<&Metrics>,
    limit: i64,
) -> Result<usize, sqlx::Error> {
    if limit <= 0 {
        return Ok(0);
    }
    let rows = outbox::claim_deliveries(db, limit, LEASE).await?;
    let claimed = rows.len();
    let configured: HashMap<String, &String> = config.webhook_urls.iter().map(|u| (endpoint_hash(u), u)).collect();
    let results: Vec<Result<(), sqlx::Error>> = futures::stream::iter(rows)
        .map(|r| {
            // Rows queued before 0008 carry their URL; later ones only its hash.
            let url = r.url.or_else(|| r.url_sha256.and_then(|h| configured.get(&h).map(|u| (*u).clone())));
            let endpoint = r.endpoint.unwrap_or_else(|| url.as_deref().map(redact_url).unwrap_or_default());
            let row = Claimed {
                id: r.id,
                event_id: r.event_id,
                url,
                endpoint,
                event: r.event.unwrap_or_default(),
                body: r.body,
                attempts: r.attempts,
            };
            deliver_one(db, http, config, metrics, row)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    results.into_iter().collect::<Result<(), _>>()?;
    Ok(claimed)
}

async fn deliver_one(
    db: &PgPool,
    http: &reqwest::Client,
    config: &Config,
    metrics: Option<&Metrics>,
    row: Claimed,
) -> Result<(), sqlx::Error> {
    let endpoint = row.endpoint.as_str();
    let Some(url) = row.url.as_deref() else {
        // Its endpoint left WEBHOOK_URLS: whoever was there no longer subscribes.
        outbox::give_up_removed_endpoint(db, row.id).await?;
        info!(webhook.endpoint = %endpoint, webhook.event = %row.event, webhook.id = %row.event_id, "webhook dropped: its endpoint is no longer in WEBHOOK_URLS");
        if let Some(m) = metrics {
            Metrics::count(&m.webhooks, "endpoint_removed");
        }
        return Ok(());
    };
    let sent = post(http, config, url, &row).await;
    let attempt = row.attempts.saturating_add(1);
    let outcome = match sent {
        Sent::Delivered(status) => {
            outbox::mark_delivered(db, row.id, status).await?;
            debug!(webhook.endpoint = %endpoint, webhook.event = %row.event, webhook.id = %row.event_id, attempt, "webhook delivered");
            "delivered"
        }
        Sent::Failed { status, error } => {
            let give_up = attempt >= MAX_ATTEMPTS;
            let retry_in = config.retry.backoff(u32::try_from(attempt).unwrap_or(u32::MAX));
            outbox::mark_failed(db, row.id, status, &error, retry_in, give_up).await?;
            if give_up {
                warn!(webhook.endpoint = %endpoint, webhook.event = %row.event, webhook.id = %row.event_id, attempt, error = %error, "webhook given up after the last attempt");
                "given_up"
            } else {
                info!(webhook.endpoint = %endpoint, webhook.event = %row.event, webhook.id = %row.event_id, attempt, error = %error, retry_in_secs = retry_in.as_secs_f64(), "webhook delivery failed; will retry");
                "failed"
            }
        }
    };
    if let Some(m) = metrics {
        Metrics::count(&m.webhooks, outcome);
    }
    Ok(())
}

async fn post(http: &reqwest::Client, config: &Config, url: &str, row: &Claimed) -> Sent {
    let mut request = http
        .post(url)
        .timeout(REQUEST_TIMEOUT)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Webhook-Event", &row.event)
        .header("X-Webhook-Id", row.event_id.to_string());
    if let Some(secret) = &config.webhook_secret {
        let id = row.event_id.to_string();
        // Per attempt: the timestamp is when this request was sent, so a retry is signed afresh.
        let timestamp = chrono::Utc::now().timestamp();
        // Config refuses a `whsec_` secret that is not base64; were one to get here anyway, the
        // raw bytes still sign, rather than a webhook going out with one signature missing.
        let key = signature::standard_key(secret).unwrap_or_else(|_| secret.expose().as_bytes().to_vec());
        request = request
            .header("X-Signature-256", signature::signature(secret, row.body.as_bytes()))
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature::standard_signature(&key, &id, timestamp, row.body.as_bytes()));
    }
    match request.body(row.body.clone()).send().await {
        Ok(response) if response.status().is_success() => Sent::Delivered(response.status().as_u16()),
        Ok(response) => {
            let status = response.status();
            Sent::Failed { status: Some(status.as_u16()), error: format!("HTTP {status}") }
        }
        Err(e) => Sent::Failed { status: None, error: describe(e) },
    }
}

/// The HTTP client `run_delivery` uses: [`REQUEST_TIMEOUT`], redirects not followed (a 3xx is a
/// failed attempt: a redirected POST would turn into a GET).
fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("fb-token-refresh-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Delivers the outbox until `shutdown`: a [`deliver_due`] round of [`CONCURRENCY`] rows every
/// 500 ms, at once again after a full round, with up to 4 rounds in flight so one waiting on a
/// hanging endpoint does not delay newer events. Postgres errors are logged and retried with the
/// `RETRY_*` backoff; it never returns early. On shutdown, rounds in flight get [`REQUEST_TIMEOUT`]
/// to finish; rows still out then come back after their lease. Rows whose endpoint has left
/// `WEBHOOK_URLS` since they were queued are given up, not sent.
pub async fn run_delivery(db: PgPool, config: Arc<Config>, metrics: Option<Metrics>, shutdown: CancellationToken) {
    let http = match client() {
        Ok(http) => http,
        Err(e) => {
            error!(error = %e.without_url(), "cannot build the webhook HTTP client; webhooks are not delivered");
            shutdown.cancelled().await;
            return;
        }
    };
    if !config.webhook_urls.is_empty() && config.webhook_secret.is_none() {
        warn!("WEBHOOK_URLS is set without WEBHOOK_SECRET: webhooks are sent unsigned");
    }
    let limit = i64::try_from(CONCURRENCY).unwrap_or(i64::MAX);
    let mut rounds: JoinSet<Result<usize, sqlx::Error>> = JoinSet::new();
    let mut next_round = Instant::now();
    let mut errors_in_a_row = 0u32;
    loop {
        if rounds.len() < ROUNDS_IN_FLIGHT && Instant::now() >= next_round {
            let (db, http, config, metrics) = (db.clone(), http.clone(), config.clone(), metrics.clone());
            rounds.spawn(async move { deliver_due(&db, &http, &config, metrics.as_ref(), limit).await });
            next_round = Instant::now() + POLL_INTERVAL;
        }
        let can_start = rounds.len() < ROUNDS_IN_FLIGHT;
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(done) = rounds.join_next(), if !rounds.is_empty() => match done {
                Ok(Ok(claimed)) => {
                    errors_in_a_row = 0;
                    if claimed >= CONCURRENCY {
                        next_round = Instant::now();
                    }
                }
                Ok(Err(e)) => {
                    errors_in_a_row = errors_in_a_row.saturating_add(1);
                    let wait = config.retry.backoff(errors_in_a_row).max(POLL_INTERVAL);
                    warn!(error = %e, retry_in_secs = wait.as_secs_f64(), "webhook delivery round failed");
                    next_round = Instant::now() + wait;
                }
                Err(e) => error!(error = %e, "webhook delivery round panicked"),
            },
            () = tokio::time::sleep_until(next_round.into()), if can_start => {}
        }
    }
    let drain = async { while rounds.join_next().await.is_some() {} };
    if tokio::time::timeout(REQUEST_TIMEOUT + Duration::from_secs(2), drain).await.is_err() {
        rounds.abort_all();
    }
}

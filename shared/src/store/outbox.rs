//! `fb_webhook_deliveries`, the webhook outbox: the rows a status change queues, in the
//! transaction that settles it when there is one, and the claims and verdicts of their delivery.
//! Queueing lives here rather than with the deliverer because the store's own settlements queue
//! their changes, and the store cannot reach up into the module that POSTs them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::config::Config;

/// A channel's status as it changed. `from` is the status stored before (`fb_token_states.status`,
/// or `"none"` when the channel had no state yet), `to` the one just settled; `"data_access_expiring"`
/// is a status of its own for the data-access warning. `error` is the Graph error behind `to`:
/// (code, subcode, message).
#[derive(Debug, Clone, PartialEq)]
pub struct StatusChange {
    pub channel_id: i64,
    pub page_id: String,
    pub from: String,
    pub to: String,
    pub error: Option<(Option<i64>, Option<i64>, String)>,
    pub at: DateTime<Utc>,
}

pub const EVENT_REAUTHORIZATION_REQUIRED: &str = "token.reauthorization_required";
pub const EVENT_HEALTHY: &str = "token.healthy";
pub const EVENT_DATA_ACCESS_EXPIRING: &str = "token.data_access_expiring";

/// Which event a status change is, if any:
/// - `token.reauthorization_required`: to `reauthorization_required` from anything else;
/// - `token.data_access_expiring`: to `data_access_expiring` (the caller decides when to warn);
/// - `token.healthy`: to `healthy` or `refreshed` from a problem state, `reauthorization_required`,
///   `retrying` (a confirmed failure below the threshold, or a transient one) or `unknown` (stored
///   only when a job gave up with an error) — "the token works again". [`enqueue`] sends it from
///   `retrying` or `unknown` only when `token.reauthorization_required` was the channel's last
///   word to subscribers.
///
/// Everything else is no event: `healthy` <-> `refreshed` (the token worked all along), a channel's
/// first state (`none` -> `healthy`), and moves into `retrying` or `unknown` (undecided, not yet a
/// reason for a person to act).
pub fn event_type(from: &str, to: &str) -> Option<&'static str> {
    match to {
        "reauthorization_required" if from != to => Some(EVENT_REAUTHORIZATION_REQUIRED),
        "data_access_expiring" => Some(EVENT_DATA_ACCESS_EXPIRING),
        "healthy" | "refreshed" if matches!(from, "reauthorization_required" | "retrying" | "unknown") => {
            Some(EVENT_HEALTHY)
        }
        _ => None,
    }
}

/// The JSON every endpoint receives for one event. Built from ids, statuses and the Graph error
/// only: there is no token to leak.
pub fn event_body(event: &str, event_id: Uuid, change: &StatusChange) -> Value {
    json!({
        "event": event,
        "event_id": event_id,
        "channel_id": change.channel_id,
        "page_id": change.page_id,
        "from": change.from,
        "to": change.to,
        "occurred_at": change.at.to_rfc3339(),
        "error": change.error.as_ref().map(|(code, subcode, message)| json!({
            "code": code,
            "subcode": subcode,
            "message": message,
        })),
    })
}

/// Whether subscribers were last told that this channel needs reauthorization (its latest
/// `token.reauthorization_required` / `token.healthy` event in the outbox is the former).
///
/// `retrying` and `unknown` are stored for transient trouble too: a healthy channel that met one
/// timeout would otherwise send `token.healthy` about a problem no one was told of, which at 100k
/// channels and one Graph blip is 100k notifications of nothing. The same states also follow
/// `reauthorization_required` (a flagged channel re-checked during a blip), and then the recovery
/// must be announced; the outbox is the record of what was announced. Only asked for a move from
/// `retrying` or `unknown` to healthy, through an index on the channel id. The record is as long
/// as `HISTORY_RETENTION_DAYS`: a channel flagged longer ago than that, then caught by a transient
/// error, recovers without a `token.healthy` (a move straight from `reauthorization_required`
/// always sends one).
async fn problem_announced(db: &mut sqlx::PgConnection, change: &StatusChange) -> Result<bool, sqlx::Error> {
    let last: Option<String> = sqlx::query_scalar!(
        "SELECT body->>'event' FROM fb_webhook_deliveries
         WHERE body->>'channel_id' = $1 AND body->>'event' = ANY($2)
         ORDER BY id DESC LIMIT 1",
        change.channel_id.to_string(),
        &[EVENT_REAUTHORIZATION_REQUIRED, EVENT_HEALTHY][..] as &[&str],
    )
    .fetch_optional(db)
    .await?
    .flatten();
    Ok(last.as_deref() == Some(EVENT_REAUTHORIZATION_REQUIRED))
}

/// Puts the change in the outbox: one row per `WEBHOOK_URLS` endpoint, all with one `event_id`,
/// each naming its endpoint by hash and redacted form, never by the URL itself.
/// Returns the rows inserted: 0 without endpoints or when the change is no event ([`event_type`]),
/// and for `token.healthy` from `retrying` or `unknown` unless subscribers were told of the problem
/// ([`problem_announced`]).
/// One INSERT, no HTTP: callers on the refresh path never wait for an endpoint.
pub async fn enqueue(db: &PgPool, config: &Config, change: &StatusChange) -> Result<usize, sqlx::Error> {
    if config.webhook_urls.is_empty() {
        return Ok(0);
    }
    enqueue_in(&mut *db.acquire().await?, config, change).await
}

/// [`enqueue`] on a connection, so the outbox rows commit with the state change they announce.
pub async fn enqueue_in(
    db: &mut sqlx::PgConnection,
    config: &Config,
    change: &StatusChange,
) -> Result<usize, sqlx::Error> {
    if config.webhook_urls.is_empty() {
        return Ok(0);
    }
    let Some(event) = event_type(&change.from, &change.to) else {
        return Ok(0);
    };
    if event == EVENT_HEALTHY
        && change.from != "reauthorization_required"
        && !problem_announced(&mut *db, change).await?
    {
        return Ok(0);
    }
    let event_id = Uuid::now_v7();
    let body = event_body(event, event_id, change);
    // The URL itself stays out of the row: it may carry credentials ([`endpoint_hash`]).
    let hashes: Vec<String> = config.webhook_urls.iter().map(|u| endpoint_hash(u)).collect();
    let endpoints: Vec<String> = config.webhook_urls.iter().map(|u| redact_url(u)).collect();
    let inserted = sqlx::query!(
        "INSERT INTO fb_webhook_deliveries (event_id, url_sha256, endpoint, body)
         SELECT $1, h, e, $4 FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS t(h, e, n) ORDER BY n",
        event_id,
        &hashes,
        &endpoints,
        &body,
    )
    .execute(db)
    .await?
    .rows_affected();
    Ok(usize::try_from(inserted).unwrap_or(usize::MAX))
}

/// A claimed row as stored; the deliverer resolves its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub event_id: Uuid,
    /// Only on rows queued before migration 0008.
    pub url: Option<String>,
    pub url_sha256: Option<String>,
    pub endpoint: Option<String>,
    pub event: Option<String>,
    pub body: String,
    pub attempts: i32,
}

/// Claims up to `limit` due, undelivered rows with `FOR UPDATE SKIP LOCKED`, pushing their next
/// attempt `lease` ahead in the same statement: another deliverer skips the locked rows while this
/// runs and finds them not due afterwards.
pub async fn claim_deliveries(db: &PgPool, limit: i64, lease: Duration) -> Result<Vec<ClaimedDelivery>, sqlx::Error> {
    sqlx::query_as!(
        ClaimedDelivery,
        r#"UPDATE fb_webhook_deliveries d SET next_attempt_at = now() + make_interval(secs => $2)
         FROM (SELECT id FROM fb_webhook_deliveries
               WHERE delivered_at IS NULL AND given_up_at IS NULL AND next_attempt_at <= now()
               ORDER BY next_attempt_at, id
               LIMIT $1
               FOR UPDATE SKIP LOCKED) due
         WHERE d.id = due.id
         RETURNING d.id, d.event_id, d.url, d.url_sha256, d.endpoint, d.body->>'event' AS "event",
                   d.body::text AS "body!", d.attempts"#,
        limit,
        lease.as_secs_f64(),
    )
    .fetch_all(db)
    .await
}

/// Gives a row up because its endpoint left `WEBHOOK_URLS`.
pub async fn give_up_removed_endpoint(db: &PgPool, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE fb_webhook_deliveries
         SET given_up_at = now(), last_error = 'endpoint no longer in WEBHOOK_URLS'
         WHERE id = $1 AND delivered_at IS NULL",
        id,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Records a 2xx answer: the row is never sent again.
pub async fn mark_delivered(db: &PgPool, id: i64, status: u16) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE fb_webhook_deliveries
         SET delivered_at = now(), attempts = attempts + 1, last_status = $2, last_error = NULL
         WHERE id = $1 AND delivered_at IS NULL",
        id,
        i32::from(status),
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Records a failed attempt and schedules the next one `retry_in` from now, or gives the row up.
pub async fn mark_failed(
    db: &PgPool,
    id: i64,
    status: Option<u16>,
    error: &str,
    retry_in: Duration,
    give_up: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE fb_webhook_deliveries
         SET attempts = attempts + 1, last_status = $2, last_error = $3,
             next_attempt_at = now() + make_interval(secs => $4),
             given_up_at = CASE WHEN $5 THEN now() END
         WHERE id = $1 AND delivered_at IS NULL",
        id,
        status.map(i32::from),
        error,
        retry_in.as_secs_f64(),
        give_up,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// What an outbox row stores to name its endpoint: the SHA-256 (hex) of the `WEBHOOK_URLS` entry.
/// URLs may carry credentials (user info, a `?key=`), and the outbox keeps rows for
/// `HISTORY_RETENTION_DAYS`; the deliverer finds the URL again among the configured ones.
pub fn endpoint_hash(url: &str) -> String {
    hex::encode(Sha256::digest(url.as_bytes()))
}

/// An endpoint as logs may show it: scheme, host, port and path; no user info, no query, no
/// fragment.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("");
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{host}{port}{}", u.scheme(), u.path())
        }
        Err(_) => "[invalid url]".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    #[test]
    fn webhooks_event_types() {
        for (from, to, want) in [
            ("healthy", "reauthorization_required", Some(EVENT_REAUTHORIZATION_REQUIRED)),
            ("retrying", "reauthorization_required", Some(EVENT_REAUTHORIZATION_REQUIRED)),
            ("none", "reauthorization_required", Some(EVENT_REAUTHORIZATION_REQUIRED)),
            ("reauthorization_required", "reauthorization_required", None),
            ("reauthorization_required", "healthy", Some(EVENT_HEALTHY)),
            ("reauthorization_required", "refreshed", Some(EVENT_HEALTHY)),
            ("retrying", "refreshed", Some(EVENT_HEALTHY)),
            ("unknown", "healthy", Some(EVENT_HEALTHY)),
            ("healthy", "data_access_expiring", Some(EVENT_DATA_ACCESS_EXPIRING)),
            ("healthy", "refreshed", None),
            ("refreshed", "healthy", None),
            ("healthy", "healthy", None),
            ("none", "healthy", None),
            ("healthy", "retrying", None),
            ("retrying", "unknown", None),
        ] {
            assert_eq!(event_type(from, to), want, "{from} -> {to}");
        }
    }

    #[test]
    fn webhooks_body_shape() {
        let change = StatusChange {
            channel_id: 7,
            page_id: "1001".into(),
            from: "retrying".into(),
            to: "reauthorization_required".into(),
            error: Some((Some(190), None, "password changed".into())),
            at: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).single().expect("valid time"),
        };
        let id = Uuid::nil();
        assert_eq!(
            event_body(EVENT_REAUTHORIZATION_REQUIRED, id, &change),
            json!({
                "event": "token.reauthorization_required",
                "event_id": "00000000-0000-0000-0000-000000000000",
                "channel_id": 7,
                "page_id": "1001",
                "from": "retrying",
                "to": "reauthorization_required",
                "occurred_at": "2026-01-02T03:04:05+00:00",
                "error": {"code": 190, "subcode": null, "message": "password changed"},
            })
        );
        let healthy = StatusChange { to: "healthy".into(), error: None, ..change };
        assert_eq!(event_body(EVENT_HEALTHY, id, &healthy)["error"], Value::Null);
    }

    #[test]
    fn webhooks_redact_url_drops_credentials_and_query() {
        assert_eq!(
            redact_url("https://user:hunter2@hooks.example.com:8443/in/abc?token=s3cret#frag"),
            "https://hooks.example.com:8443/in/abc"
        );
        assert_eq!(redact_url("http://127.0.0.1/"), "http://127.0.0.1/");
        assert_eq!(redact_url("::not a url"), "[invalid url]");
    }
}

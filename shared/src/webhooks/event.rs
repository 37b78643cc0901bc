use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use super::{StatusChange, endpoint_hash, redact_url};
use crate::config::Config;

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
    let last: Option<String> = sqlx::query_scalar(
        "SELECT body->>'event' FROM fb_webhook_deliveries
         WHERE body->>'channel_id' = $1 AND body->>'event' = ANY($2)
         ORDER BY id DESC LIMIT 1",
    )
    .bind(change.channel_id.to_string())
    .bind(&[EVENT_REAUTHORIZATION_REQUIRED, EVENT_HEALTHY][..])
    .fetch_optional(db)
    .await?;
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
    let inserted = sqlx::query(
        "INSERT INTO fb_webhook_deliveries (event_id, url_sha256, endpoint, body)
         SELECT $1, h, e, $4 FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS t(h, e, n) ORDER BY n",
    )
    .bind(event_id)
    .bind(&hashes)
    .bind(&endpoints)
    .bind(&body)
    .execute(db)
    .await?
    .rows_affected();
    Ok(usize::try_from(inserted).unwrap_or(usize::MAX))
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
}

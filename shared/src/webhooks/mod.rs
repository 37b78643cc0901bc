//! Webhook notifications: a signed JSON POST to every `WEBHOOK_URLS` endpoint when a channel's token
//! status changes (needs reauthorization, back to healthy, data access expiring).
//!
//! # The queue is a Postgres outbox
//! [`enqueue`] turns one [`StatusChange`] into one event (one `event_id`) and inserts one row per
//! endpoint into `fb_webhook_deliveries`. [`run_delivery`] (one task per worker process) calls
//! [`deliver_due`] in a loop; it claims due, undelivered rows with `SELECT … FOR UPDATE SKIP LOCKED`
//! and, in the same statement (one transaction), pushes their `next_attempt_at` forward by a lease
//! ([`LEASE`]). Another deliverer, in this process or any other, skips the locked rows while the
//! claim runs and finds them not due afterwards, so any number of worker processes deliver each row
//! once. A deliverer that crashes mid-POST leaves its rows to come back when the lease ends: delivery
//! is at least once in that case, so receivers should deduplicate on `X-Webhook-Id`.
//!
//! # Requests
//! `POST <url>` with the event JSON, `Content-Type: application/json`, `X-Webhook-Event: <type>`,
//! `X-Webhook-Id: <event_id>` and, when `WEBHOOK_SECRET` is set, two signatures over the exact
//! bytes sent:
//! - `X-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>` ([`signature`]), keyed by the
//!   secret's bytes as written, GitHub style;
//! - the [Standard Webhooks](https://www.standardwebhooks.com/) headers `webhook-id: <event_id>`,
//!   `webhook-timestamp: <Unix seconds at send time>` and `webhook-signature: v1,<base64
//!   HMAC-SHA256(key, "{id}.{timestamp}.{body}")>` ([`standard_signature`]). The key is the
//!   spec's: for `WEBHOOK_SECRET=whsec_<base64>` the decoded bytes (the configuration refuses a
//!   remainder that is not base64), for any other secret its bytes as written
//!   ([`standard_key`]). Because the timestamp is signed, receivers can refuse replays (the
//!   spec's libraries allow 5 minutes of skew); each retry is signed with its own timestamp.
//!
//! Redirects are not followed; each request has a [`REQUEST_TIMEOUT`]. The body never carries a
//! token:
//! ```json
//! {"event": "token.reauthorization_required", "event_id": "…", "channel_id": 7, "page_id": "1001",
//!  "from": "retrying", "to": "reauthorization_required", "occurred_at": "2026-01-01T00:00:00+00:00",
//!  "error": {"code": 190, "subcode": 460, "message": "…"}}
//! ```
//!
//! # Retries
//! A 2xx answer marks the row delivered. Anything else (another status, a timeout, a refused
//! connection) counts an attempt, records `last_status`/`last_error` and schedules the next attempt
//! after `RETRY_*`'s backoff (`RetryPolicy::backoff(attempts)`). After [`MAX_ATTEMPTS`] the row gets
//! `given_up_at` and is never sent again (it stays in the table for operators). Logs and
//! `last_error` name an endpoint by scheme, host and path only: no credentials, no query.
//!
//! # Rows do not store URLs
//! An endpoint URL may carry credentials, and rows are kept for `HISTORY_RETENTION_DAYS`, so a
//! row names its endpoint by the SHA-256 of the `WEBHOOK_URLS` entry ([`endpoint_hash`]) and by
//! its redacted form (`endpoint`, for operators). The deliverer looks the hash up among the
//! URLs configured now: a row whose endpoint has been removed from `WEBHOOK_URLS` is given up
//! (`last_error` says so) instead of being sent to someone who no longer subscribes. Changing a
//! URL (a rotated `?key=`) is removing one endpoint and adding another. Rows queued before
//! migration 0008 still carry their URL and are delivered to it.
//!
//! # A dead endpoint never blocks refreshes
//! [`enqueue`] is one INSERT, and delivery runs in its own task, so a job never waits for an
//! endpoint. Within a delivery round up to [`CONCURRENCY`] requests run at once and each is bounded
//! by [`REQUEST_TIMEOUT`], so an endpoint that hangs holds up neither the other endpoints nor the
//! next rounds for longer than that.

mod deliver;

pub use crate::signing::{STANDARD_SECRET_PREFIX, signature, standard_key, standard_signature};
pub use crate::store::outbox::{
    EVENT_DATA_ACCESS_EXPIRING, EVENT_HEALTHY, EVENT_REAUTHORIZATION_REQUIRED, StatusChange, endpoint_hash, enqueue,
    enqueue_in, event_body, event_type, redact_url,
};
pub use deliver::{CONCURRENCY, LEASE, MAX_ATTEMPTS, REQUEST_TIMEOUT, deliver_due, run_delivery};

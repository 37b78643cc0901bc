//! The JSON bodies of the API as types: what the handlers send and read, and, through
//! `utoipa::ToSchema`, what `/api/openapi.json` says they are. The field names, their presence and
//! nullability are the contract's (`CONTRACT.md`, HTTP API); doc comments are the document's
//! descriptions, so they are written for the API's callers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use shared::{
    intake::Decision,
    schedule::Paused,
    status::{InboxStatus, LastError, Subscription},
    store::{TokenStatus, subscriptions::State},
};
use utoipa::{
    ToSchema,
    openapi::{
        RefOr, Schema,
        schema::{ObjectBuilder, SchemaType, Type},
    },
};
use uuid::Uuid;

/// The token status of a Facebook inbox.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = Status)]
pub struct StatusBody {
    pub inbox_id: i64,
    pub channel_id: i64,
    pub page_id: String,
    #[schema(required = true)]
    pub token_valid: Option<bool>,
    #[schema(schema_with = token_status)]
    pub status: TokenStatus,
    pub reauthorization_required: bool,
    pub authorization_error_count: i64,
    #[serde(serialize_with = "rfc3339")]
    #[schema(required = true)]
    pub last_checked: Option<DateTime<Utc>>,
    #[serde(serialize_with = "rfc3339")]
    #[schema(required = true)]
    pub last_refreshed: Option<DateTime<Utc>>,
    #[schema(required = true, inline)]
    pub last_error: Option<LastErrorBody>,
    // Additions to the contract's body: still working, but a person should reconnect soon.
    #[schema(schema_with = warning)]
    pub warning: Option<&'static str>,
    /// addition
    #[serde(serialize_with = "rfc3339")]
    pub data_access_expires_at: Option<DateTime<Utc>>,
    /// refresh endpoint only: a new token was written
    // Absent, not null, from every other answer: the contract adds it to the refresh's body only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub refreshed: Option<bool>,
    // Addition: whether the page's webhooks still reach this app.
    // Always sent, but required only where the contract requires: a client of the contract's body
    // need not know the additions.
    #[schema(required = false)]
    pub subscription: SubscriptionBody,
}

impl From<&InboxStatus> for StatusBody {
    fn from(s: &InboxStatus) -> Self {
        Self {
            inbox_id: s.inbox_id,
            channel_id: s.channel_id,
            page_id: s.page_id.clone(),
            token_valid: s.token_valid,
            status: s.status,
            reauthorization_required: s.reauthorization_required,
            authorization_error_count: s.authorization_error_count,
            last_checked: s.last_checked,
            last_refreshed: s.last_refreshed,
            last_error: s.last_error.as_ref().map(LastErrorBody::from),
            warning: s.warning(),
            data_access_expires_at: s.data_access_expires_at,
            refreshed: None,
            subscription: SubscriptionBody::from(&s.subscription),
        }
    }
}

/// The last Graph error.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct LastErrorBody {
    pub code: Option<i64>,
    pub subcode: Option<i64>,
    pub message: String,
}

impl From<&LastError> for LastErrorBody {
    fn from(e: &LastError) -> Self {
        Self { code: e.code, subcode: e.subcode, message: e.message.clone() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(
    as = Subscription,
    description = "addition: whether the page's webhooks still reach this app (GET /{page_id}/subscribed_apps), \
                   checked after every token write and once a day"
)]
pub struct SubscriptionBody {
    #[schema(schema_with = subscription_state)]
    pub state: String,
    #[serde(serialize_with = "rfc3339")]
    #[schema(required = true)]
    pub checked_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "rfc3339")]
    #[schema(required = true)]
    pub resubscribed_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "rfc3339")]
    #[schema(required = true)]
    pub next_retry_at: Option<DateTime<Utc>>,
    #[schema(required = true, inline)]
    pub last_error: Option<LastErrorBody>,
}

impl From<&Subscription> for SubscriptionBody {
    fn from(s: &Subscription) -> Self {
        Self {
            state: s.state.clone(),
            checked_at: s.checked_at,
            resubscribed_at: s.resubscribed_at,
            next_retry_at: s.next_retry_at,
            last_error: s.last_error.as_ref().map(LastErrorBody::from),
        }
    }
}

/// The refresh did not settle within `wait`: where to ask how it stands.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Accepted {
    pub job_id: Uuid,
    pub status_url: String,
}

/// Where a refresh job stands.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Job {
    pub job_id: Uuid,
    #[schema(inline)]
    pub state: JobState,
    /// The job's outcome so far (the last attempt's, while it retries).
    #[schema(required = true, value_type = Option<String>)]
    pub outcome: Option<shared::job::JobOutcome>,
    #[serde(serialize_with = "rfc3339")]
    #[schema(required = true)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Settled: whether a new token was written.
    #[schema(required = true)]
    pub refreshed: Option<bool>,
    pub inbox: StatusBody,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Retrying,
    Settled,
}

/// A send that failed with a Graph error.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
pub struct Report {
    // Read whole by `shared::intake::parse_report`, which also takes the bare object: so it may be
    // missing here, and the handler reads it before it reads this type.
    #[serde(default)]
    #[schema(required = true, schema_with = graph_error_object)]
    pub error: Value,
    /// when the send failed; absent or null: now
    #[serde(default)]
    pub failed_at: Option<DateTime<Utc>>,
}

/// What the intake did with a report.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Reported {
    #[schema(inline)]
    pub action: Action,
    /// enqueued, coalesced and deferred: the refresh job
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub job_id: Option<Uuid>,
    pub channel_id: i64,
    pub error_class: &'static str,
}

impl Reported {
    pub fn new(decision: Decision, channel_id: i64, error_class: &'static str) -> Self {
        let (action, job_id) = match decision {
            Decision::Enqueued { job_id } => (Action::Enqueued, Some(job_id)),
            Decision::Coalesced { job_id } => (Action::Coalesced, Some(job_id)),
            Decision::AlreadyReplaced => (Action::AlreadyReplaced, None),
            Decision::NotAuth => (Action::NotAuth, None),
            Decision::Deferred { job_id } => (Action::Deferred, Some(job_id)),
        };
        Self { action, job_id, channel_id, error_class }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Enqueued,
    Coalesced,
    AlreadyReplaced,
    NotAuth,
    Deferred,
}

/// Queue depth.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = Queue)]
pub struct QueueBody {
    pub pending: u64,
    pub scheduled: u64,
    pub running: u64,
    pub done: u64,
    /// dead_letters + apalis_dead
    pub dead: u64,
    /// addition: dead-lettered jobs awaiting retry-dead
    pub dead_letters: i64,
    /// addition: jobs apalis moved to its own dead set
    pub apalis_dead: u64,
    pub deferred: u64,
    // Addition: whether the cron schedule is paused (`producer schedule pause`), by whom, since when.
    /// addition: set while the cron schedule is paused (producer schedule pause)
    #[schema(required = true, inline)]
    pub schedule_paused: Option<SchedulePaused>,
}

/// Who paused the cron schedule, and when.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SchedulePaused {
    pub by: String,
    // serde's chrono format (`Z`), as the pause is stored and has always been shown.
    pub at: DateTime<Utc>,
}

impl From<Paused> for SchedulePaused {
    fn from(p: Paused) -> Self {
        Self { by: p.by, at: p.at }
    }
}

/// Postgres and Redis answer.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Ready {
    #[schema(inline)]
    pub status: ReadyState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadyState {
    Ready,
}

/// The API's times as `DateTime::to_rfc3339` writes them (`+00:00`), as it always has; serde's
/// chrono format would write `Z`.
fn rfc3339<S: Serializer>(time: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    time.map(|t| t.to_rfc3339()).serialize(s)
}

/// The statuses, from the one list of them.
fn token_status() -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(TokenStatus::ALL.map(TokenStatus::as_str))).into()
}

// A `schema_with` schema is taken as it is, so these carry their fields' descriptions.

fn subscription_state() -> RefOr<Schema> {
    let states = [State::Subscribed, State::Resubscribed, State::Missing, State::Failed, State::Unknown];
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(states.map(State::as_str)))
        .description(Some(
            "resubscribed: it had lost this app and was subscribed again with Chatwoot's fields; missing: it lacks \
             this app and subscribing failed; failed: the check itself failed; unknown: not checked yet, or FB_APP_ID \
             unknown",
        ))
        .into()
}

fn warning() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some([Value::from("data_access_expiring"), Value::Null]))
        .description(Some("addition: still working, but Facebook stops giving data within 7 days"))
        .into()
}

/// Only `code` is required, and an integer: without one a report is refused as not a Graph error.
/// The bounds say that "integer" means one that fits i64, as the server reads it.
fn graph_error_object() -> RefOr<Schema> {
    let code = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Int64)))
        .minimum(Some(i64::MIN))
        .maximum(Some(i64::MAX));
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("code", code)
        .required("code")
        .description(Some(
            "the Graph error object the send failed with; other fields (error_subcode, message, type, fbtrace_id) \
             are read when present",
        ))
        .into()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 500_000_000).single().expect("time")
    }

    fn inbox() -> InboxStatus {
        InboxStatus {
            inbox_id: 5,
            account_id: 1,
            inbox_name: "page".into(),
            channel_id: 9,
            page_id: "123".into(),
            token_valid: None,
            status: TokenStatus::Unknown,
            reauthorization_required: false,
            authorization_error_count: 0,
            consecutive_failures: 0,
            last_checked: Some(at(1_800_000_000)),
            last_refreshed: None,
            next_attempt_at: None,
            last_error: Some(LastError {
                kind: Some("auth".into()),
                code: Some(190),
                subcode: None,
                message: "m".into(),
            }),
            expires_at: None,
            data_access_expires_at: None,
            subscription: Subscription::default(),
        }
    }

    /// The contract's body, field for field: nulls where it has nulls, `+00:00` times, and no
    /// `refreshed` outside the refresh endpoint.
    #[test]
    fn the_status_body_is_the_contracts() {
        let body = serde_json::to_value(StatusBody::from(&inbox())).expect("json");
        assert_eq!(
            body,
            json!({
                "inbox_id": 5, "channel_id": 9, "page_id": "123", "token_valid": null, "status": "unknown",
                "reauthorization_required": false, "authorization_error_count": 0,
                "last_checked": "2027-01-15T08:00:00.500+00:00", "last_refreshed": null,
                "last_error": {"code": 190, "subcode": null, "message": "m"},
                "warning": null, "data_access_expires_at": null,
                "subscription": {"state": "unknown", "checked_at": null, "resubscribed_at": null,
                    "next_retry_at": null, "last_error": null},
            })
        );
        let refreshed = StatusBody { refreshed: Some(true), ..StatusBody::from(&inbox()) };
        assert_eq!(serde_json::to_value(refreshed).expect("json")["refreshed"], true);
    }

    #[test]
    fn a_report_names_its_job_only_when_it_has_one() {
        let job_id = Uuid::nil();
        let enqueued = serde_json::to_value(Reported::new(Decision::Enqueued { job_id }, 9, "auth")).expect("json");
        assert_eq!(enqueued, json!({"action": "enqueued", "job_id": job_id, "channel_id": 9, "error_class": "auth"}));
        let not_auth = serde_json::to_value(Reported::new(Decision::NotAuth, 9, "transient")).expect("json");
        assert_eq!(not_auth, json!({"action": "not_auth", "channel_id": 9, "error_class": "transient"}));
    }

    /// The pause is shown as it is stored (serde's chrono format), unlike the API's other times.
    #[test]
    fn a_schedule_pause_is_shown_as_stored() {
        let paused = Paused { by: "ops".into(), at: at(1_800_000_000) };
        let stored = serde_json::to_value(&paused).expect("json");
        assert_eq!(serde_json::to_value(SchedulePaused::from(paused)).expect("json"), stored);
    }

    #[test]
    fn a_report_reads_failed_at_as_rfc_3339_or_null() {
        let report = |v: Value| Report::deserialize(&v).map(|r| r.failed_at);
        assert_eq!(report(json!({"error": {"code": 1}})).ok(), Some(None));
        assert_eq!(report(json!({"error": {"code": 1}, "failed_at": null})).ok(), Some(None));
        assert_eq!(
            report(json!({"failed_at": "2027-01-15T09:00:00.5+01:00"})).ok(),
            Some(Some(at(1_800_000_000))),
            "the bare error object, and any offset"
        );
        assert!(report(json!({"error": {"code": 1}, "failed_at": "yesterday"})).is_err());
        assert!(report(json!({"error": {"code": 1}, "failed_at": 5})).is_err());
    }
}

//! The API's path and query parameters as typed extractors, each with its rule and the OpenAPI
//! parameters that state it, side by side. Refusals are the API's 400s, never axum's plain text.

use std::{collections::HashMap, time::Duration};

use axum::{
    extract::{FromRequestParts, Path, Query},
    http::request::Parts,
};
use serde::Deserialize;
use utoipa::{
    IntoParams,
    openapi::{
        KnownFormat, Required, SchemaFormat,
        path::{Parameter, ParameterBuilder, ParameterIn},
        schema::{ObjectBuilder, Type},
    },
};
use uuid::Uuid;

use crate::errors::{ApiError, parse_id};

/// `{account_id}` and `{inbox_id}`: Chatwoot ids, 1 to i32::MAX (see `parse_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxPath {
    pub account_id: i64,
    pub inbox_id: i64,
}

/// `{account_id}`, `{inbox_id}` and the `{job_id}` a 202 handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobPath {
    pub inbox: InboxPath,
    pub job_id: Uuid,
}

/// The segments as they came: parsed here, so a bad one is refused with the API's message.
#[derive(Deserialize)]
struct RawIds {
    account_id: String,
    inbox_id: String,
    job_id: Option<String>,
}

impl RawIds {
    async fn of<S: Send + Sync>(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<Self>::from_request_parts(parts, state)
            .await
            .map_err(|r| ApiError::rejected(r.status(), &r.body_text()))?;
        Ok(raw)
    }

    fn inbox(&self) -> Result<InboxPath, ApiError> {
        Ok(InboxPath {
            account_id: parse_id(&self.account_id, "account_id")?,
            inbox_id: parse_id(&self.inbox_id, "inbox_id")?,
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for InboxPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        RawIds::of(parts, state).await?.inbox()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for JobPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let raw = RawIds::of(parts, state).await?;
        let inbox = raw.inbox()?;
        let job = raw.job_id.unwrap_or_default();
        let job_id = job.parse().map_err(|_| ApiError::bad_request(format!("job id must be a UUID, got {job:?}")))?;
        Ok(Self { inbox, job_id })
    }
}

/// Chatwoot's ids are Postgres `integer`s: a larger one names nothing and is refused as bad input.
fn id_parameter(name: &str, what: &str) -> Parameter {
    let schema = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
        .minimum(Some(1))
        .maximum(Some(i32::MAX));
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(what))
        .schema(Some(schema))
        .build()
}

impl IntoParams for InboxPath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![id_parameter("account_id", "account"), id_parameter("inbox_id", "inbox")]
    }
}

impl IntoParams for JobPath {
    fn into_params(in_provider: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let job_id = ParameterBuilder::new()
            .name("job_id")
            .parameter_in(ParameterIn::Path)
            .required(Required::True)
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))),
            ))
            .build();
        let mut params = InboxPath::into_params(in_provider);
        params.push(job_id);
        params
    }
}

/// The query as a map: a repeated name takes its last value, a malformed pair is read leniently,
/// as the API always has.
async fn query<S: Send + Sync>(parts: &mut Parts, state: &S) -> Result<HashMap<String, String>, ApiError> {
    let Query(query) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
        .await
        .map_err(|r| ApiError::rejected(r.status(), &r.body_text()))?;
    Ok(query)
}

/// `?check=true` validates the token against Graph before answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check(pub bool);

impl<S: Send + Sync> FromRequestParts<S> for Check {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match query(parts, state).await?.get("check").map(String::as_str) {
            None | Some("false") | Some("0") => Ok(Self(false)),
            Some("true") | Some("1") => Ok(Self(true)),
            Some(other) => Err(ApiError::bad_request(format!("check must be true or false, got {other:?}"))),
        }
    }
}

impl IntoParams for Check {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            ParameterBuilder::new()
                .name("check")
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some("validate against Graph first"))
                .schema(Some(ObjectBuilder::new().schema_type(Type::Boolean)))
                .build(),
        ]
    }
}

const DEFAULT_WAIT: u64 = 10;
const MAX_WAIT: u64 = 60;

/// `?wait=SECS`: how long a refresh request waits for the job to settle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait(pub Duration);

impl<S: Send + Sync> FromRequestParts<S> for Wait {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let secs = match query(parts, state).await?.get("wait") {
            None => DEFAULT_WAIT,
            Some(w) => match w.parse::<u64>() {
                Ok(secs) if secs <= MAX_WAIT => secs,
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "wait must be whole seconds from 0 to {MAX_WAIT}, got {w:?}"
                    )));
                }
            },
        };
        Ok(Self(Duration::from_secs(secs)))
    }
}

impl IntoParams for Wait {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let schema = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0))
            .maximum(Some(MAX_WAIT))
            .default(Some(DEFAULT_WAIT.into()));
        vec![
            ParameterBuilder::new()
                .name("wait")
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .schema(Some(schema))
                .build(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use axum::{Router, body::Body, http::Request, routing::get};
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;

    /// A router with the API's path shapes whose handlers echo what the extractors made.
    async fn call(uri: &str) -> (u16, String) {
        let app = Router::new()
            .route(
                "/a/{account_id}/i/{inbox_id}",
                get(
                    |InboxPath { account_id, inbox_id }: InboxPath, Check(check): Check, Wait(wait): Wait| async move {
                        format!("{account_id} {inbox_id} {check} {}", wait.as_secs())
                    },
                ),
            )
            .route(
                "/a/{account_id}/i/{inbox_id}/jobs/{job_id}",
                get(|JobPath { inbox, job_id }: JobPath| async move { format!("{} {job_id}", inbox.inbox_id) }),
            );
        let response = app.oneshot(Request::get(uri).body(Body::empty()).expect("request")).await.expect("answer");
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), 4_096).await.expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// A refusal's `message`, after checking it is the API's JSON error.
    fn refusal((status, body): (u16, String)) -> String {
        assert_eq!(status, 400, "{body}");
        let body: Value = serde_json::from_str(&body).expect("a JSON error");
        assert_eq!(body["error"], "bad_request", "{body}");
        body["message"].as_str().expect("message").to_owned()
    }

    #[tokio::test]
    async fn good_parameters_and_their_defaults() {
        assert_eq!(call("/a/1/i/2147483647").await, (200, "1 2147483647 false 10".into()));
        assert_eq!(call("/a/1/i/2?check=true&wait=0").await, (200, "1 2 true 0".into()));
        assert_eq!(call("/a/1/i/2?check=0&wait=60").await, (200, "1 2 false 60".into()));
        let job = uuid::Uuid::new_v4();
        assert_eq!(call(&format!("/a/1/i/2/jobs/{job}")).await, (200, format!("2 {job}")));
    }

    #[tokio::test]
    async fn ids_outside_postgres_integers_are_refused_by_name() {
        for (uri, message) in [
            ("/a/abc/i/2", r#"account_id must be a positive integer, got "abc""#),
            ("/a/1/i/0", r#"inbox_id must be a positive integer, got "0""#),
            ("/a/1/i/-4", r#"inbox_id must be a positive integer, got "-4""#),
            ("/a/1/i/2147483648", r#"inbox_id must be a positive integer, got "2147483648""#),
            ("/a/0/i/x", r#"account_id must be a positive integer, got "0""#),
            ("/a/1/i/2/jobs/not-a-uuid", r#"job id must be a UUID, got "not-a-uuid""#),
            ("/a/x/i/2/jobs/not-a-uuid", r#"account_id must be a positive integer, got "x""#),
        ] {
            assert_eq!(refusal(call(uri).await), message, "{uri}");
        }
    }

    #[tokio::test]
    async fn a_segment_that_is_not_utf8_is_a_json_400() {
        let message = refusal(call("/a/%FF/i/2").await);
        assert!(!message.is_empty());
    }

    #[tokio::test]
    async fn query_values_outside_their_rules_are_refused() {
        for (uri, message) in [
            ("/a/1/i/2?check=maybe", r#"check must be true or false, got "maybe""#),
            ("/a/1/i/2?wait=61", r#"wait must be whole seconds from 0 to 60, got "61""#),
            ("/a/1/i/2?wait=-1", r#"wait must be whole seconds from 0 to 60, got "-1""#),
            ("/a/1/i/2?wait=soon", r#"wait must be whole seconds from 0 to 60, got "soon""#),
        ] {
            assert_eq!(refusal(call(uri).await), message, "{uri}");
        }
    }
}

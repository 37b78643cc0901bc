//! `/readyz` for every process: whether Postgres and Redis answer, as a 200 or a 503 with the API's
//! error body.

use std::time::Duration;

use axum::{Json, http::StatusCode};
use redis::aio::ConnectionManager;
use serde_json::json;
use sqlx::PgPool;

/// How long `/readyz` waits for each store: a probe must answer well within a typical 5 s probe
/// timeout, and a store slower than this is not serving jobs either.
const STORE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// 200, or 503 with the API's error body.
pub fn readiness_response(checked: Result<(), String>) -> (StatusCode, Json<serde_json::Value>) {
    match checked {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(message) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": "unavailable", "message": message}))),
    }
}

/// Whether Postgres and Redis both answer, each within `STORE_CHECK_TIMEOUT`; Err says which not.
pub async fn stores_ready(db: &PgPool, redis: &ConnectionManager) -> Result<(), String> {
    let mut redis = redis.clone();
    let postgres = tokio::time::timeout(STORE_CHECK_TIMEOUT, crate::store::ping(db));
    let ping = redis::cmd("PING");
    let redis = tokio::time::timeout(STORE_CHECK_TIMEOUT, ping.query_async::<String>(&mut redis));
    let (postgres, redis) = tokio::join!(postgres, redis);
    let mut problems = Vec::new();
    match postgres {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => problems.push(format!("Postgres does not answer: {e}")),
        Err(_) => problems.push(format!("Postgres did not answer within {}s", STORE_CHECK_TIMEOUT.as_secs())),
    }
    match redis {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => problems.push(format!("Redis does not answer: {e}")),
        Err(_) => problems.push(format!("Redis did not answer within {}s", STORE_CHECK_TIMEOUT.as_secs())),
    }
    if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
}

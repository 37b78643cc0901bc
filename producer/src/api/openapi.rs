//! The OpenAPI description served at `/api/openapi.json`, derived from the handlers'
//! `#[utoipa::path]`s and the body types, so it says what the server does, and served as 3.0.3
//! (`openapi_3_0`). `tests/tests/it/openapi.rs`
//! holds it to the server: every documented operation answers only documented statuses, and its
//! bodies carry only documented fields.

use axum::Json;
use serde_json::Value;
use utoipa::{
    Modify, OpenApi,
    openapi::{
        self,
        security::{ApiKey, ApiKeyValue, SecurityScheme},
    },
};

use super::{intake, openapi_3_0, probes, queue, refresh, status};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Facebook page token refresh",
        description = "Keeps Facebook Page access tokens alive. Every /api/v1 call needs the api_access_token header."
    ),
    paths(
        status::token_status,
        refresh::refresh,
        refresh::job_status,
        intake::report_failure,
        queue::queue_depth,
        probes::metrics,
        probes::healthz,
        probes::readyz,
    ),
    modifiers(&ApiAccessToken),
    security(("api_access_token" = []))
)]
struct Api;

/// The `api_access_token` header every `/api/v1` call sends: Chatwoot's own name for it.
struct ApiAccessToken;

impl Modify for ApiAccessToken {
    fn modify(&self, doc: &mut openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let header = ApiKey::Header(ApiKeyValue::new("api_access_token"));
        components.add_security_scheme("api_access_token", SecurityScheme::ApiKey(header));
    }
}

pub async fn get() -> Json<Value> {
    Json(document())
}

pub fn document() -> Value {
    // Serializing the derived document cannot fail: it is strings, numbers and maps.
    openapi_3_0::from_3_1(serde_json::to_value(Api::openapi()).unwrap_or_default())
}

//! The token-health dashboard (server-rendered). Placeholder until the dashboard lands.

use axum::Router;

use crate::api::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
}

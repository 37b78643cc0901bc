//! The queue page (administrator only): `GET /dashboard/queue`, and its buttons, each a form post
//! under `/dashboard/queue/...` (see `actions`).

mod actions;
mod page;
mod strings;

use axum::{
    Router,
    routing::{get, post},
};

use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard/queue", get(page::index))
        .route("/dashboard/queue/schedule/pause", post(actions::pause))
        .route("/dashboard/queue/schedule/resume", post(actions::resume))
        .route("/dashboard/queue/cycle", post(actions::run_cycle))
        .route("/dashboard/queue/dead/retry-all", post(actions::retry_all))
        .route("/dashboard/queue/dead/discard-all", post(actions::discard_all))
        .route("/dashboard/queue/dead/{id}/retry", post(actions::retry_one))
        .route("/dashboard/queue/dead/{id}/discard", post(actions::discard_one))
}

//! The composition root of `producer serve`: the API and the dashboard, side by side, on one state.

use axum::Router;

use crate::{api, dashboard, state::AppState};

pub fn router(state: AppState) -> Router {
    Router::new().merge(api::routes(state.clone())).merge(dashboard::routes()).with_state(state)
}

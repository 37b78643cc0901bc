//! The token-health dashboard: server-rendered HTML (no JS build step; a small inline script only
//! enhances "Try auto refresh") behind a login form that takes an `api_access_token` and keeps a
//! session in Redis. Account tokens see their account's inboxes, the admin token every account's.
//!
//! - `GET /`: the login form without a session, else the dashboard (`?status=`, `?q=`, `?page=`, `?lang=vi|en`)
//! - `POST /login`, `POST /logout`
//! - `POST /dashboard/inboxes/{inbox_id}/refresh`: "Try auto refresh" (JSON or a redirect)
//! - `GET /dashboard/queue` and its buttons (administrator only; `queue`)

mod actions;
mod banner;
mod causes;
mod chart;
mod groups;
mod html;
mod i18n;
mod layout;
mod locale;
mod login;
mod page;
mod queue;
mod rows;
mod session;
mod view;

use axum::{
    Router,
    response::Redirect,
    routing::{get, post},
};

pub use html::escape_html;

use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(page::index))
        .route("/login", get(|| async { Redirect::to("/") }).post(login::login))
        .route("/logout", post(login::logout))
        .route("/dashboard/inboxes/{inbox_id}/refresh", post(actions::refresh))
        .merge(queue::routes())
}

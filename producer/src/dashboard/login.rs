//! The login form (`GET /` without a session), `POST /login` and `POST /logout`.

use std::collections::HashMap;

use axum::{
    Form,
    extract::{Query, State, rejection::FormRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use maud::html;
use serde::Deserialize;

use super::{
    layout::{self, no_store},
    locale::Locale,
    session,
};
use crate::{auth::token_caller, state::AppState};

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    api_access_token: String,
}

/// Why the form is shown again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    BadToken,
    Unavailable,
}

/// The sign-in page. Never echoes what was typed.
pub fn form(status: StatusCode, locale: Locale, problem: Option<Problem>) -> Response {
    let t = locale.t();
    let error = match problem {
        None => None,
        Some(Problem::BadToken) => Some(t.bad_token),
        Some(Problem::Unavailable) => Some(t.unavailable),
    };
    let body = html! {
        (layout::top_bar(locale, None, "/"))
        main { div.card.login {
            h2 { (t.sign_in) }
            p.muted { (t.sign_in_help) }
            @if let Some(error) = error { p.error role="alert" { (error) } }
            form method="post" action=(locale.link("/login")) autocomplete="off" {
                label for="api_access_token" { (t.token_label) }
                input #api_access_token name="api_access_token" type="password" required autofocus
                    autocomplete="off" spellcheck="false";
                button.btn type="submit" { (t.sign_in) }
            }
        } }
    };
    layout::page(status, locale, t.sign_in, body)
}

/// `POST /login`: a valid token starts a session and goes to the dashboard; anything else shows
/// the form again with a 401.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    form_body: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let locale = Locale::negotiate(query.get("lang").map(String::as_str), &headers);
    if session::cross_site(&headers) {
        return form(StatusCode::FORBIDDEN, locale, Some(Problem::BadToken));
    }
    let token = form_body.map(|Form(f)| f.api_access_token).unwrap_or_default();
    let token = token.trim();
    let caller = match token_caller(&state, token).await {
        Ok(caller) => caller,
        Err(e) if e.status == StatusCode::UNAUTHORIZED => {
            return form(StatusCode::UNAUTHORIZED, locale, Some(Problem::BadToken));
        }
        Err(_) => return form(StatusCode::SERVICE_UNAVAILABLE, locale, Some(Problem::Unavailable)),
    };
    let cookie = match session::create(&state, &caller, token).await {
        Ok(cookie) => cookie,
        Err(_) => return form(StatusCode::SERVICE_UNAVAILABLE, locale, Some(Problem::Unavailable)),
    };
    tracing::info!(caller = %caller.label(), "dashboard sign-in");
    let mut resp = Redirect::to(&locale.link("/")).into_response();
    resp.headers_mut().insert(header::SET_COOKIE, session::set_cookie(&cookie, &headers));
    no_store(&mut resp);
    resp
}

/// `POST /logout`: ends the session and shows the form.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let locale = Locale::negotiate(query.get("lang").map(String::as_str), &headers);
    if session::cross_site(&headers) {
        return (StatusCode::FORBIDDEN, "cross-site request refused").into_response();
    }
    // A session that cannot be deleted now still expires; the cookie goes either way.
    let _ = session::destroy(&state, &headers).await;
    let mut resp = Redirect::to(&locale.link("/")).into_response();
    resp.headers_mut().insert(header::SET_COOKIE, session::clear_cookie());
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

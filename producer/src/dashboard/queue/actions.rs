//! The queue page's buttons: pause and resume the schedule, run a cycle now, retry or discard dead
//! letters one by one or all at once. Each is a form post guarded as "Try auto refresh" is (a
//! same-site request, a live session, the administrator) and by the session's form token; each is
//! written to the operator history, and answered with a redirect back to the page that says what
//! it did.

use std::collections::HashMap;

use axum::{
    Form,
    extract::{Path, Query, State, rejection::FormRejection},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;
use shared::{job::Reason, keys::RedisKeys, schedule, store};

use super::{
    super::{layout, locale::Locale, session},
    page::problem_page,
    strings::strings,
};
use crate::{auth::Caller, state::AppState};

#[derive(Debug, Default, Deserialize)]
pub struct ActionForm {
    csrf: Option<String>,
}

/// What a button asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Pause,
    Resume,
    RunCycle,
    /// One dead letter (`Some(id)`) or all of them.
    Retry(Option<i64>),
    Discard(Option<i64>),
}

impl Action {
    /// Its name in the operator history.
    fn name(self) -> &'static str {
        match self {
            Self::Pause => "schedule.pause",
            Self::Resume => "schedule.resume",
            Self::RunCycle => "cycle.run",
            Self::Retry(Some(_)) => "dead_letter.retry",
            Self::Retry(None) => "dead_letter.retry_all",
            Self::Discard(Some(_)) => "dead_letter.discard",
            Self::Discard(None) => "dead_letter.discard_all",
        }
    }

    fn target(self) -> Option<String> {
        match self {
            Self::Retry(Some(id)) | Self::Discard(Some(id)) => Some(format!("dead letter {id}")),
            Self::Retry(None) | Self::Discard(None) => Some("every open dead letter".to_owned()),
            Self::Pause | Self::Resume | Self::RunCycle => None,
        }
    }
}

/// What came of it: the history's outcome text, and the notice the page shows (`done=`).
struct Done {
    outcome: String,
    notice: &'static str,
    counts: Option<(u64, u64)>,
}

type Query_ = Query<HashMap<String, String>>;
type Body = Result<Form<ActionForm>, FormRejection>;

pub async fn pause(State(s): State<AppState>, h: HeaderMap, Query(q): Query_, f: Body) -> Response {
    act(&s, &h, &q, f, Action::Pause).await
}

pub async fn resume(State(s): State<AppState>, h: HeaderMap, Query(q): Query_, f: Body) -> Response {
    act(&s, &h, &q, f, Action::Resume).await
}

pub async fn run_cycle(State(s): State<AppState>, h: HeaderMap, Query(q): Query_, f: Body) -> Response {
    act(&s, &h, &q, f, Action::RunCycle).await
}

pub async fn retry_all(State(s): State<AppState>, h: HeaderMap, Query(q): Query_, f: Body) -> Response {
    act(&s, &h, &q, f, Action::Retry(None)).await
}

pub async fn discard_all(State(s): State<AppState>, h: HeaderMap, Query(q): Query_, f: Body) -> Response {
    act(&s, &h, &q, f, Action::Discard(None)).await
}

pub async fn retry_one(s: State<AppState>, h: HeaderMap, id: Path<String>, q: Query_, f: Body) -> Response {
    one(s, h, id, q, f, Action::Retry).await
}

pub async fn discard_one(s: State<AppState>, h: HeaderMap, id: Path<String>, q: Query_, f: Body) -> Response {
    one(s, h, id, q, f, Action::Discard).await
}

/// A button of one dead letter, once its id is known to be one.
async fn one(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query_,
    f: Body,
    action: fn(Option<i64>) -> Action,
) -> Response {
    match dead_letter_id(&id) {
        Some(n) => act(&s, &h, &q, f, action(Some(n))).await,
        None => bad_id(&h, &q, &id),
    }
}

/// Dead letter ids are `bigserial`: any positive 64-bit integer.
fn dead_letter_id(raw: &str) -> Option<i64> {
    raw.parse::<i64>().ok().filter(|id| *id > 0)
}

fn bad_id(headers: &HeaderMap, query: &HashMap<String, String>, raw: &str) -> Response {
    let locale = Locale::negotiate(query.get("lang").map(String::as_str), headers);
    let message = format!("a dead letter id must be a positive integer, got {raw:?}");
    problem_page(locale, StatusCode::BAD_REQUEST, None, &message)
}

async fn act(
    state: &AppState,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    form: Body,
    action: Action,
) -> Response {
    let locale = Locale::negotiate(query.get("lang").map(String::as_str), headers);
    let q = strings(locale);
    let t = locale.t();
    if session::cross_site(headers) {
        return problem_page(locale, StatusCode::FORBIDDEN, None, q.forbidden_form);
    }
    let caller = match session::current(state, headers).await {
        Ok(Some(caller)) => caller,
        Ok(None) => return Redirect::to(&locale.link("/")).into_response(),
        Err(_) => return problem_page(locale, StatusCode::SERVICE_UNAVAILABLE, None, t.unavailable),
    };
    if caller != Caller::Admin {
        return problem_page(locale, StatusCode::FORBIDDEN, Some(&caller), q.admin_only);
    }
    let sent = form.ok().and_then(|Form(f)| f.csrf);
    if !session::csrf_ok(headers, sent.as_deref()) {
        return problem_page(locale, StatusCode::FORBIDDEN, Some(&caller), q.forbidden_form);
    }
    let actor = match session::audit_name(headers) {
        Some(s) => format!("{}, session {s}", caller.label()),
        None => caller.label(),
    };
    let done = match perform(state, action, &actor).await {
        Ok(done) => done,
        Err(e) => {
            tracing::error!(action = action.name(), error = %format!("{e:#}"), "queue page action failed");
            audit(state, &actor, action, &format!("failed: {e:#}")).await;
            return problem_page(locale, StatusCode::SERVICE_UNAVAILABLE, Some(&caller), t.unavailable);
        }
    };
    audit(state, &actor, action, &done.outcome).await;
    tracing::info!(action = action.name(), actor = %actor, outcome = %done.outcome, "queue page action");
    let mut to = format!("/dashboard/queue?done={}", done.notice);
    if let Some((n, jobs)) = done.counts {
        to.push_str(&format!("&n={n}&jobs={jobs}"));
    }
    let mut resp = Redirect::to(&locale.link(&to)).into_response();
    layout::no_store(&mut resp);
    resp
}

/// Written after the action, with how it ended; a history that cannot be written is logged, the
/// action having happened anyway.
async fn audit(state: &AppState, actor: &str, action: Action, outcome: &str) {
    let target = action.target();
    if let Err(e) = store::record_operator_action(&state.db, actor, action.name(), target.as_deref(), outcome).await {
        tracing::error!(action = action.name(), error = %e, "cannot write the operator history (Postgres)");
    }
}

async fn perform(state: &AppState, action: Action, actor: &str) -> anyhow::Result<Done> {
    let mut redis = state.redis.clone();
    let keys = RedisKeys::of(&state.config);
    let done = |outcome: String, notice| Done { outcome, notice, counts: None };
    Ok(match action {
        Action::Pause => {
            let p = schedule::pause(&mut redis, &keys, actor).await?;
            let outcome = if p.by == actor { "paused".to_owned() } else { format!("already paused by {}", p.by) };
            done(outcome, "paused")
        }
        Action::Resume => {
            let was = schedule::resume(&mut redis, &keys).await?;
            done(if was { "resumed" } else { "was not paused" }.to_owned(), "resumed")
        }
        Action::RunCycle => {
            // The cycle waits for room in the queue as a cron cycle does: it runs on, the page returns.
            let row = crate::cycle::cycle_started(&state.db, store::cycles::Origin::Dashboard, Some(actor)).await;
            let (db, redis, config) = (state.db.clone(), state.redis.clone(), state.config.clone());
            tokio::spawn(async move {
                let result = crate::cycle::enqueue_cycle(&db, redis, &config, Reason::Cron).await;
                if let Err(e) = &result {
                    tracing::error!(error = %format!("{e:#}"), "the cycle started from the queue page stopped");
                }
                crate::cycle::cycle_finished(&db, row, &result).await;
            });
            let outcome = row.map_or_else(|| "cycle started".to_owned(), |id| format!("cycle {id} started"));
            done(outcome, "cycle")
        }
        Action::Retry(one) => {
            let ids = one.map(|id| vec![id]);
            let mut storage = state.storage.clone();
            let r =
                crate::retry_dead::redrive(&state.db, &mut storage, &mut redis, &state.config, None, ids.as_deref())
                    .await?;
            if r.dead_jobs == 0 {
                done("nothing open to re-drive".to_owned(), "nothing")
            } else {
                Done {
                    outcome: r.to_string(),
                    notice: "retried",
                    counts: Some((r.dead_jobs as u64, r.jobs.len() as u64)),
                }
            }
        }
        Action::Discard(one) => {
            let ids = one.map(|id| vec![id]);
            let n = store::discard_dead(&state.db, ids.as_deref()).await?;
            if n == 0 {
                done("nothing open to discard".to_owned(), "nothing")
            } else {
                Done { outcome: format!("discarded {n} dead letters"), notice: "discarded", counts: Some((n, 0)) }
            }
        }
    })
}

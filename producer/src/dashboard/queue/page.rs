//! `GET /dashboard/queue`: the queue at Sidekiq Web's level, for the administrator. The schedule
//! (paused or not, the next tick, "Run cycle now"), the jobs by state with their payloads, the
//! dead letters with Retry and Discard, the last cycles and the operator history. Rendered with
//! maud, which escapes every value it is given.

use std::collections::HashMap;

use axum::{
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use shared::{
    keys::RedisKeys,
    queue::browse::{JobState, QueueListing, QueuedJob, StateJobs, browse},
    schedule::{self, Paused},
    store::{self, DeadLetter, OperatorAction, cycles::CycleRow},
};

use super::{
    super::{layout, locale::Locale, page::who, session},
    strings::{QueueStrings, strings},
};
use crate::{auth::Caller, state::AppState};

/// Jobs shown per state, dead letters, cycles and history rows.
const SHOWN: usize = 50;
const CYCLES: i64 = 10;
const HISTORY: i64 = 20;

struct Data {
    listing: QueueListing,
    dead: Vec<DeadLetter>,
    dead_total: i64,
    cycles: Vec<CycleRow>,
    history: Vec<OperatorAction>,
    paused: Option<Paused>,
}

pub async fn index(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let locale = Locale::negotiate(query.get("lang").map(String::as_str), &headers);
    let caller = match session::current(&state, &headers).await {
        Ok(Some(caller)) => caller,
        Ok(None) => return Redirect::to(&locale.link("/")).into_response(),
        Err(_) => return problem_page(locale, StatusCode::SERVICE_UNAVAILABLE, None, locale.t().unavailable),
    };
    if caller != Caller::Admin {
        return problem_page(locale, StatusCode::FORBIDDEN, Some(&caller), strings(locale).admin_only);
    }
    match load(&state).await {
        Ok(data) => {
            let csrf = session::csrf_token(&headers).unwrap_or_default();
            let body = render(&state, locale, &caller, &query, &data, &csrf, Utc::now());
            layout::page(StatusCode::OK, locale, strings(locale).title, body)
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "queue page cannot load");
            problem_page(locale, StatusCode::SERVICE_UNAVAILABLE, Some(&caller), locale.t().unavailable)
        }
    }
}

async fn load(state: &AppState) -> anyhow::Result<Data> {
    let mut redis = state.redis.clone();
    let keys = RedisKeys::of(&state.config);
    let limit = i64::try_from(SHOWN).unwrap_or(50);
    let (dead, dead_total, cycles, history) = tokio::try_join!(
        store::open_dead_letters(&state.db, limit),
        store::open_dead_count(&state.db),
        store::cycles::recent_cycles(&state.db, CYCLES),
        store::recent_operator_actions(&state.db, HISTORY),
    )?;
    let listing = browse(&mut redis, &state.config, SHOWN).await?;
    let paused = schedule::paused(&mut redis, &keys).await?;
    Ok(Data { listing, dead, dead_total, cycles, history, paused })
}

/// A page with the top bar and one message: refusals and outages.
pub fn problem_page(locale: Locale, status: StatusCode, caller: Option<&Caller>, message: &str) -> Response {
    let who = caller.map(|c| who(locale.t(), c));
    let body = html! {
        (layout::top_bar(locale, who.as_deref(), "/dashboard/queue"))
        main { p.error role="alert" { (message) } p { a href=(locale.link("/")) { (strings(locale).nav_inboxes) } } }
    };
    layout::page(status, locale, strings(locale).title, body)
}

fn render(
    state: &AppState,
    locale: Locale,
    caller: &Caller,
    query: &HashMap<String, String>,
    data: &Data,
    csrf: &str,
    now: DateTime<Utc>,
) -> Markup {
    let q = strings(locale);
    let l = &data.listing;
    let counts = [
        (q.waiting, l.waiting.total, "waiting"),
        (q.scheduled, l.scheduled.total, "scheduled"),
        (q.retrying, l.retrying.total, "retrying"),
        (q.running, l.running.total, "running"),
        (q.dead_letters, u64::try_from(data.dead_total).unwrap_or(0), "dead"),
    ];
    html! {
        (layout::top_bar(locale, Some(&who(locale.t(), caller)), "/dashboard/queue"))
        main.queue-page {
            nav.tabs {
                a href=(locale.link("/")) { (q.nav_inboxes) }
                a.on href=(locale.link("/dashboard/queue")) aria-current="page" { (q.nav_queue) }
            }
            @if let Some(notice) = notice(q, query) { p.notice role="status" { (notice) } }
            (schedule_card(state, locale, q, data.paused.as_ref(), csrf, now))
            div.counts {
                @for (label, n, key) in counts {
                    a href={ "#" (key) } data-state=(key) { span.n { (n) } " " (label) }
                }
            }
            (dead_section(locale, q, &data.dead, data.dead_total, csrf, now))
            @if l.scheduled_truncated {
                p.muted { (q.scan_note.replace("{n}", &shared::queue::browse::SCAN.to_string())) }
            }
            (jobs_section(q, JobState::Retrying, &l.retrying, now))
            (jobs_section(q, JobState::Running, &l.running, now))
            (jobs_section(q, JobState::Waiting, &l.waiting, now))
            (jobs_section(q, JobState::Scheduled, &l.scheduled, now))
            @if l.dead.total > 0 { (jobs_section(q, JobState::Dead, &l.dead, now)) }
            (cycles_section(locale, q, &data.cycles, now))
            (history_section(locale, q, &data.history, now))
        }
    }
}

/// The message of the action just done (`?done=` from its redirect).
fn notice(q: &QueueStrings, query: &HashMap<String, String>) -> Option<String> {
    let n = query.get("n").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0).to_string();
    let jobs = query.get("jobs").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0).to_string();
    Some(match query.get("done")?.as_str() {
        "paused" => q.done_paused.to_owned(),
        "resumed" => q.done_resumed.to_owned(),
        "cycle" => q.done_cycle.to_owned(),
        "retried" => q.done_retried.replace("{n}", &n).replace("{jobs}", &jobs),
        "discarded" => q.done_discarded.replace("{n}", &n),
        "nothing" => q.done_nothing.to_owned(),
        _ => return None,
    })
}

/// A button that posts the session's form token to `action`.
fn button(locale: Locale, action: &str, csrf: &str, label: &str, class: &str, confirm: Option<&str>) -> Markup {
    html! {
        form method="post" action=(locale.link(action)) data-confirm=[confirm] {
            input type="hidden" name="csrf" value=(csrf);
            button.btn.(class) type="submit" { (label) }
        }
    }
}

fn schedule_card(
    state: &AppState,
    locale: Locale,
    q: &QueueStrings,
    paused: Option<&Paused>,
    csrf: &str,
    now: DateTime<Utc>,
) -> Markup {
    let cron = &state.config.refresh_cron;
    let next = crate::cron::parse_schedule(cron).ok().and_then(|s| s.find_next_occurrence(&now, false).ok());
    let next = next.map_or_else(|| "-".to_owned(), |n| n.format("%Y-%m-%d %H:%M UTC").to_string());
    html! {
        section.card.schedule #schedule data-paused=(paused.is_some()) {
            h2 { (q.schedule) }
            @match paused {
                Some(p) => p.paused-note {
                    span.badge.s-retrying { "⏸" } " "
                    (q.schedule_paused.replace("{by}", &p.by).replace("{at}", &p.at.format("%Y-%m-%d %H:%M UTC").to_string()))
                },
                None => p { span.badge.s-healthy { "▶" } " " (q.schedule_running.replace("{cron}", cron).replace("{next}", &next)) },
            }
            div.actions {
                @if paused.is_some() {
                    (button(locale, "/dashboard/queue/schedule/resume", csrf, q.resume, "secondary", None))
                } @else {
                    (button(locale, "/dashboard/queue/schedule/pause", csrf, q.pause, "secondary", None))
                }
                (button(locale, "/dashboard/queue/cycle", csrf, q.run_cycle, "secondary", None))
                span.muted { (q.run_cycle_help) }
            }
        }
    }
}

fn when(locale: Locale, at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Markup {
    super::super::html::when(locale.t(), at, now)
}

fn showing(q: &QueueStrings, shown: usize, total: u64) -> Markup {
    html! {
        @if (shown as u64) < total {
            p.muted { (q.showing.replace("{shown}", &shown.to_string()).replace("{total}", &total.to_string())) }
        }
    }
}

fn payload(text: Option<&str>) -> Markup {
    html! {
        @match text {
            Some(t) => details { summary.mono { "JSON" } pre.mono.payload { (pretty(t)) } },
            None => span.muted { "-" },
        }
    }
}

/// Indented JSON when it parses, else the text as it is.
fn pretty(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| text.to_owned())
}

fn channels(ids: &[i64]) -> String {
    match ids {
        [] => "-".to_owned(),
        [one] => one.to_string(),
        [first, .., last] => format!("{first} … {last} ({})", ids.len()),
    }
}

fn short(id: Option<uuid::Uuid>, task: &str) -> String {
    id.map_or_else(|| task.to_owned(), |id| id.to_string())
}

fn dead_section(
    locale: Locale,
    q: &QueueStrings,
    dead: &[DeadLetter],
    total: i64,
    csrf: &str,
    now: DateTime<Utc>,
) -> Markup {
    html! {
        section.card.jobs #dead {
            div.table-head {
                h2 { (q.dead_letters) " " span.muted { "(" (total) ")" } }
                @if total > 0 {
                    (button(locale, "/dashboard/queue/dead/retry-all", csrf, q.retry_all, "secondary", None))
                    (button(locale, "/dashboard/queue/dead/discard-all", csrf, q.discard_all, "secondary", Some(q.confirm_discard_all)))
                }
            }
            @if dead.is_empty() {
                p.empty { (q.none) }
            } @else {
                table.inboxes {
                    thead { tr {
                        th { "#" } th { (q.col_job) } th { (q.col_channels) } th { (q.col_reason) }
                        th { (q.col_attempt) } th { (q.col_error) } th { (q.col_when) } th { (q.col_payload) } th { (q.col_actions) }
                    } }
                    tbody {
                        @for d in dead {
                            tr data-dead-letter=(d.id) {
                                td.mono { (d.id) }
                                td.mono { (d.job_id.map_or_else(|| "-".to_owned(), |j| j.to_string())) }
                                td { (d.channel_id.map_or_else(|| "-".to_owned(), |c| c.to_string())) }
                                td { (d.reason.as_deref().unwrap_or("-")) }
                                td { (d.attempts.map_or_else(|| "-".to_owned(), |a| a.to_string())) }
                                td {
                                    span.mono { (d.error_kind) }
                                    @if let Some(code) = d.error_code {
                                        " " span.mono { "(#" (code) @if let Some(s) = d.error_subcode { "/" (s) } ")" }
                                    }
                                    @if let Some(m) = &d.error_message { div.graph.muted { (shared::graph::mask_token_shapes(m)) } }
                                }
                                td { (when(locale, Some(d.created_at), now)) }
                                td { (payload(d.payload.as_ref().map(|p| shared::graph::mask_token_shapes(&p.to_string())).as_deref())) }
                                td.actions {
                                    @if d.channel_id.is_some() {
                                        (button(locale, &format!("/dashboard/queue/dead/{}/retry", d.id), csrf, q.retry, "secondary", None))
                                    }
                                    (button(locale, &format!("/dashboard/queue/dead/{}/discard", d.id), csrf, q.discard, "secondary", None))
                                }
                            }
                        }
                    }
                }
                (showing(q, dead.len(), u64::try_from(total).unwrap_or(0)))
            }
        }
    }
}

/// A state's section id (the count links' anchors) and heading.
fn section_of(q: &QueueStrings, state: JobState) -> (&'static str, &'static str) {
    match state {
        JobState::Waiting => ("waiting", q.waiting),
        JobState::Scheduled => ("scheduled", q.scheduled),
        JobState::Retrying => ("retrying", q.retrying),
        JobState::Running => ("running", q.running),
        JobState::Dead => ("apalis-dead", q.apalis_dead),
    }
}

fn jobs_section(q: &QueueStrings, state: JobState, jobs: &StateJobs, now: DateTime<Utc>) -> Markup {
    let (id, title) = section_of(q, state);
    let retrying = state == JobState::Retrying;
    let running = state == JobState::Running;
    let timed = retrying || state == JobState::Scheduled;
    html! {
        section.card.jobs id=(id) {
            h2 { (title) " " span.muted { "(" (jobs.total) ")" } }
            @if jobs.jobs.is_empty() {
                p.empty { (q.none) }
            } @else {
                table.inboxes {
                    thead { tr {
                        th { (q.col_job) } th { (q.col_channels) } th { (q.col_reason) } th { (q.col_attempt) }
                        @if timed { th { (if retrying { q.col_next_attempt } else { q.col_due }) } }
                        @if retrying { th { (q.col_last_error) } }
                        @if running { th { (q.col_worker) } }
                        th { (q.col_payload) }
                    } }
                    tbody {
                        @for j in &jobs.jobs { (job_row(j, timed, retrying, running, now)) }
                    }
                }
                (showing(q, jobs.jobs.len(), jobs.total))
            }
        }
    }
}

fn job_row(j: &QueuedJob, timed: bool, retrying: bool, running: bool, now: DateTime<Utc>) -> Markup {
    html! {
        tr data-task=(j.task_id) {
            td.mono { (short(j.job_id, &j.task_id)) br; span.muted { (j.kind.as_deref().unwrap_or("?")) } }
            td { (channels(&j.channels)) }
            td { (j.reason.as_deref().unwrap_or("-")) }
            td { (j.attempt.map_or_else(|| "-".to_owned(), |a| a.to_string())) }
            @if timed { td { (due(j.due_at, now)) } }
            @if retrying {
                td {
                    @match &j.last_error {
                        Some(e) => {
                            span.mono { (e.kind.as_str()) @if let Some(c) = e.code { " (#" (c) ")" } }
                            div.graph.muted { (shared::graph::mask_token_shapes(&e.message)) }
                        },
                        None => span.muted { "-" },
                    }
                }
            }
            @if running { td.mono { (j.worker.as_deref().unwrap_or("-")) } }
            td { (payload(j.payload.as_deref())) }
        }
    }
}

/// A due time: the exact time (with the date when it is not today), and how far off it is.
fn due(at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Markup {
    html! {
        @match at {
            Some(at) => time datetime=(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) {
                (if at.date_naive() == now.date_naive() { at.format("%H:%M:%S UTC") } else { at.format("%Y-%m-%d %H:%M UTC") })
                " " span.muted { "(" (distance((at - now).num_seconds())) ")" }
            },
            None => span.muted { "-" },
        }
    }
}

/// `+45 s`, `+12 min`, `+3 h`, `+50 d`; negative when overdue.
fn distance(secs: i64) -> String {
    let sign = if secs < 0 { "-" } else { "+" };
    let s = secs.unsigned_abs();
    match s {
        0..120 => format!("{sign}{s} s"),
        120..7_200 => format!("{sign}{} min", s / 60),
        7_200..172_800 => format!("{sign}{} h", s / 3_600),
        _ => format!("{sign}{} d", s / 86_400),
    }
}

fn cycles_section(locale: Locale, q: &QueueStrings, cycles: &[CycleRow], now: DateTime<Utc>) -> Markup {
    html! {
        section.card.jobs #cycles {
            h2 { (q.cycles) }
            @if cycles.is_empty() {
                p.empty { (q.none) }
            } @else {
                table.inboxes {
                    thead { tr {
                        th { (q.col_started) } th { (q.col_origin) } th { (q.col_enqueued) } th { (q.col_skipped) }
                        th { (q.col_healthy) } th { (q.col_refreshed) } th { (q.col_failed) } th { (q.retrying) } th { (q.col_duration) }
                    } }
                    tbody {
                        @for c in cycles {
                            tr data-cycle=(c.id) {
                                td { (when(locale, Some(c.started_at), now)) }
                                td { (c.trigger) @if let Some(by) = &c.started_by { br; span.muted { (by) } } }
                                td data-enqueued=[c.enqueued] {
                                    @match c.enqueued { Some(n) => (n), None => span.muted { (q.enqueueing) } }
                                    @if let Some(e) = &c.error { div.graph.muted { (e) } }
                                }
                                td { (c.skipped.map_or_else(|| "-".to_owned(), |n| n.to_string())) }
                                td { (c.healthy) } td { (c.refreshed) } td { (c.failed) } td { (c.retrying) }
                                td { (took(c)) }
                            }
                        }
                    }
                }
                p.muted { (q.cycles_note) }
            }
        }
    }
}

/// From the cycle's start to the last result recorded in its window.
fn took(c: &CycleRow) -> String {
    let Some(end) = c.last_result_at.or(c.enqueued_at) else { return "-".to_owned() };
    let ms = (end - c.started_at).num_milliseconds().max(0);
    if ms < 10_000 { format!("{:.1} s", ms as f64 / 1000.0) } else { format!("{} s", ms / 1000) }
}

fn history_section(locale: Locale, q: &QueueStrings, history: &[OperatorAction], now: DateTime<Utc>) -> Markup {
    html! {
        section.card.jobs #history {
            h2 { (q.history) }
            @if history.is_empty() {
                p.empty { (q.none) }
            } @else {
                table.inboxes {
                    thead { tr { th { (q.col_when) } th { (q.col_who) } th { (q.col_action) } th { (q.col_target) } th { (q.col_outcome) } } }
                    tbody {
                        @for a in history {
                            tr data-action=(a.action) {
                                td { (when(locale, Some(a.created_at), now)) }
                                td { (a.actor) }
                                td.mono { (a.action) }
                                td { (a.target.as_deref().unwrap_or("-")) }
                                td { (a.outcome) }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_read_in_the_largest_whole_unit() {
        assert_eq!(distance(0), "+0 s");
        assert_eq!(distance(113), "+113 s");
        assert_eq!(distance(-5), "-5 s");
        assert_eq!(distance(600), "+10 min");
        assert_eq!(distance(3 * 3_600), "+3 h");
        assert_eq!(distance(4_319_936), "+49 d");
    }

    #[test]
    fn channel_lists_are_short() {
        assert_eq!(channels(&[]), "-");
        assert_eq!(channels(&[7]), "7");
        assert_eq!(channels(&[3, 4, 9]), "3 … 9 (3)");
    }
}

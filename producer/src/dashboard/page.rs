//! `GET /`: the login form without a session; with one, the dashboard: counts per status (links
//! that filter), the queue panel (admins), the 24-hour chart (an account's own channels for an
//! account session) and the inbox table.

use std::collections::HashMap;

use axum::{
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use chrono::{DateTime, Utc};
use shared::{
    queue::QueueDepth,
    status::{InboxStatus, list_statuses},
    store::{HourlyOutcome, hourly_outcomes},
};

use super::{
    chart,
    html::{escape_html, fill},
    i18n::Strings,
    layout,
    locale::Locale,
    login::{self, Problem},
    rows::{Notice, Table},
    session,
};
use crate::{auth::Caller, state::AppState};

const PAGE_SIZE: usize = 200;
/// The filters offered, in the order of the counts at the top (`attention` is `needs_attention`).
const FILTERS: [&str; 6] = ["attention", "reauthorization_required", "retrying", "unknown", "healthy", "refreshed"];

pub async fn index(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let locale = Locale::negotiate(query.get("lang").map(String::as_str), &headers);
    let caller = match session::current(&state, &headers).await {
        Ok(Some(caller)) => caller,
        Ok(None) => return login::form(StatusCode::OK, locale, None),
        Err(_) => return login::form(StatusCode::SERVICE_UNAVAILABLE, locale, Some(Problem::Unavailable)),
    };
    match load(&state, &caller).await {
        Ok(data) => {
            let body = render(&state, locale, &caller, &query, &data, Utc::now());
            layout::page(StatusCode::OK, locale, locale.t().title, &body)
        }
        Err(e) => {
            tracing::error!(error = %e, "dashboard cannot load");
            let t = locale.t();
            let body = format!(
                "{}<main><p class=\"error\" role=\"alert\">{}</p></main>",
                layout::top_bar(locale, Some(&who(t, &caller)), "/"),
                escape_html(t.unavailable)
            );
            layout::page(StatusCode::SERVICE_UNAVAILABLE, locale, t.title, &body)
        }
    }
}

struct Data {
    inboxes: Vec<InboxStatus>,
    /// Admins only: the queue is every account's, and `GET /api/v1/queue` is admin-only too.
    depth: Option<QueueDepth>,
    outcomes: Vec<HourlyOutcome>,
}

async fn load(state: &AppState, caller: &Caller) -> anyhow::Result<Data> {
    let (mut r1, mut r2) = (state.redis.clone(), state.redis.clone());
    let depth = async {
        match caller {
            Caller::Admin => shared::queue::depth(&mut r2, &state.config).await.map(Some),
            Caller::Account(_) | Caller::User { .. } => Ok(None),
        }
    };
    let accounts = caller.accounts();
    let (inboxes, depth, outcomes) = tokio::join!(
        list_statuses(&state.db, &mut r1, &state.pipeline.keys, accounts.as_deref()),
        depth,
        hourly_outcomes(&state.db, 24, accounts.as_deref()),
    );
    Ok(Data { inboxes: inboxes?, depth: depth?, outcomes: outcomes? })
}

pub fn who(t: &Strings, caller: &Caller) -> String {
    match caller {
        Caller::Admin => t.admin_caller.to_owned(),
        Caller::Account(a) => t.account_caller.replace("{id}", &a.to_string()),
        Caller::User { user_id, .. } => t.user_caller.replace("{id}", &user_id.to_string()),
    }
}

fn matches(filter: Option<&str>, s: &InboxStatus) -> bool {
    match filter {
        None => true,
        Some("attention") => s.needs_attention(),
        Some(status) => s.status.as_str() == status,
    }
}

fn render(
    state: &AppState,
    locale: Locale,
    caller: &Caller,
    query: &HashMap<String, String>,
    data: &Data,
    now: DateTime<Utc>,
) -> String {
    let t = locale.t();
    let filter = query.get("status").map(String::as_str).filter(|f| FILTERS.contains(f));
    let here = filter.map_or_else(|| "/".to_owned(), |f| format!("/?status={f}"));
    // A refresh without JavaScript comes back here as `?done=INBOX:OUTCOME`.
    let done = query.get("done").and_then(|d| d.split_once(':')).and_then(|(id, n)| {
        let id: i64 = id.parse().ok()?;
        Some((id, Notice::parse(n)?))
    });

    let mut shown: Vec<&InboxStatus> = data.inboxes.iter().filter(|s| matches(filter, s)).collect();
    shown.sort_by_key(|s| (!s.reauthorization_required, !s.needs_attention(), s.inbox_id));
    let pages = shown.len().div_ceil(PAGE_SIZE).max(1);
    let page = query.get("page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(1).clamp(1, pages);
    let slice = shown.iter().skip((page - 1) * PAGE_SIZE).take(PAGE_SIZE);

    let table = Table {
        locale,
        now,
        show_account: caller.spans_accounts(),
        reconnect_template: &state.config.reconnect_url_template,
        caller,
    };
    let mut rows = String::new();
    for s in slice {
        let notice = done.filter(|(id, _)| *id == s.inbox_id).map(|(_, n)| n);
        rows.push_str(&table.block(s, notice));
    }
    if shown.is_empty() {
        rows = table.empty();
    }

    let queue = data
        .depth
        .as_ref()
        .map_or_else(String::new, |d| format!("<section class=\"card queue\">{}</section>", queue_panel(t, d)));
    format!(
        "{top}<main>{counts}<div class=\"panels{single}\">{queue}\
         <section class=\"card\">{chart}</section></div>\
         <section class=\"card\"><h2>{heading}</h2><table class=\"inboxes\">{head}{rows}</table>{pager}</section></main>",
        top = layout::top_bar(locale, Some(&who(t, caller)), &here),
        counts = counts(locale, &data.inboxes, filter),
        single = if data.depth.is_none() { " single" } else { "" },
        chart = chart::chart(locale, &data.outcomes, now),
        heading = escape_html(t.inboxes),
        head = table.head(),
        pager = pager(locale, filter, page, pages, shown.len()),
    )
}

fn counts(locale: Locale, all: &[InboxStatus], filter: Option<&str>) -> String {
    let t = locale.t();
    let link = |f: Option<&str>, label: &str, n: usize, class: &str| {
        let href = f.map_or_else(|| locale.link("/"), |f| locale.link(&format!("/?status={f}")));
        let on = if f == filter { " on" } else { "" };
        format!(
            "<a class=\"count {class}{on}\" href=\"{href}\" data-status=\"{f}\"><span class=\"n\">{n}</span>{label}</a>",
            href = escape_html(&href),
            f = f.unwrap_or("all"),
            label = escape_html(label),
        )
    };
    let mut out = String::from("<nav class=\"counts\">");
    out.push_str(&link(None, t.all, all.len(), "all"));
    for f in FILTERS {
        let n = all.iter().filter(|s| matches(Some(f), s)).count();
        let label = if f == "attention" { t.needs_attention } else { t.status(f) };
        out.push_str(&link(Some(f), label, n, &format!("c-{f}")));
    }
    out.push_str("</nav>");
    out
}

fn queue_panel(t: &Strings, d: &QueueDepth) -> String {
    let row = |label: &str, n: u64, key: &str, bad: bool| {
        let class = if bad && n > 0 { " class=\"bad\"" } else { "" };
        format!("<dt>{}</dt><dd data-queue=\"{key}\"{class}>{n}</dd>", escape_html(label))
    };
    format!(
        "<h2>{}</h2><dl>{}{}{}{}{}</dl>",
        escape_html(t.queue),
        row(t.queue_pending, d.pending, "pending", false),
        row(t.queue_scheduled, d.scheduled, "scheduled", false),
        row(t.queue_running, d.running, "running", false),
        row(t.queue_deferred, d.deferred, "deferred", false),
        row(t.queue_dead, d.dead, "dead", true),
    )
}

fn pager(locale: Locale, filter: Option<&str>, page: usize, pages: usize, total: usize) -> String {
    if pages <= 1 {
        return String::new();
    }
    let t = locale.t();
    let href = |p: usize| {
        let base = filter.map_or_else(|| format!("/?page={p}"), |f| format!("/?status={f}&page={p}"));
        escape_html(&locale.link(&base))
    };
    let from = (page - 1) * PAGE_SIZE + 1;
    let to = (page * PAGE_SIZE).min(total);
    let mut out = format!(
        "<nav class=\"pager\"><span>{}</span>",
        fill(t.showing, &[("from", &from.to_string()), ("to", &to.to_string()), ("total", &total.to_string())])
    );
    if page > 1 {
        out.push_str(&format!("<a href=\"{}\">{}</a>", href(page - 1), escape_html(t.previous)));
    }
    if page < pages {
        out.push_str(&format!("<a href=\"{}\">{}</a>", href(page + 1), escape_html(t.next)));
    }
    out.push_str("</nav>");
    out
}

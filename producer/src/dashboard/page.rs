//! `GET /`: the login form without a session; with one, the dashboard: counts per status (links
//! that filter), the queue panel (admins), the 24-hour chart, the banners of the inboxes to
//! reconnect (one per Facebook user) and one page of the inbox table, with a search box.
//!
//! Everything an account session sees is its own accounts': the counts, the groups and the rows
//! (`Caller::accounts()` scopes every query), the chart (`hourly_outcomes` by account) and no queue
//! panel (the queue is every account's; `GET /api/v1/queue` is admin-only too). Counting,
//! filtering, searching and paging are SQL (`shared::store::dashboard`), and only the page's 200
//! rows have their Redis flags read, so a page view does not grow with the number of inboxes.

use std::collections::HashMap;

use axum::{
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use shared::{
    queue::QueueDepth,
    status::{InboxStatus, inbox_page},
    store::{
        HourlyOutcome,
        dashboard::{FlaggedGroup, Scope, StatusCounts, flagged_groups, status_counts},
        hourly_outcomes,
    },
};

use super::{
    chart, groups,
    html::Text,
    i18n::Strings,
    layout,
    locale::Locale,
    login::{self, Problem},
    rows::{Notice, Table},
    session,
    view::{FILTERS, View},
};
use crate::{auth::Caller, state::AppState};

const PAGE_SIZE: usize = 200;

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
    let mut view = View::parse(&query);
    match load(&state, &caller, &mut view).await {
        Ok(data) => {
            let body = render(&state, locale, &caller, &query, &view, &data, Utc::now());
            layout::page(StatusCode::OK, locale, locale.t().title, body)
        }
        Err(e) => {
            tracing::error!(error = %e, "dashboard cannot load");
            let t = locale.t();
            let body = html! {
                (layout::top_bar(locale, Some(&who(t, &caller)), "/"))
                main { p.error role="alert" { (t.unavailable) } }
            };
            layout::page(StatusCode::SERVICE_UNAVAILABLE, locale, t.title, body)
        }
    }
}

struct Data {
    counts: StatusCounts,
    /// The page of rows asked for (`View::page`, clamped to the pages there are).
    rows: Vec<InboxStatus>,
    /// The largest groups of inboxes to reconnect, and how many groups there are.
    groups: (Vec<FlaggedGroup>, i64),
    /// Admins only: the queue is every account's.
    depth: Option<QueueDepth>,
    outcomes: Vec<HourlyOutcome>,
}

/// Only the filters that can hold a flagged inbox show the groups.
fn shows_groups(filter: Option<&str>) -> bool {
    matches!(filter, None | Some("attention" | "reauthorization_required"))
}

/// Runs every query at once; the page of rows is read for the page asked for and read again only
/// when that page is past the end (a stale link, a hand-typed number).
async fn load(state: &AppState, caller: &Caller, view: &mut View) -> anyhow::Result<Data> {
    let (mut r1, mut r2) = (state.redis.clone(), state.redis.clone());
    let accounts = caller.accounts();
    let scope = Scope { accounts: accounts.as_deref(), search: view.search.as_ref() };
    let keys = &state.pipeline.keys;
    let depth = async {
        if *caller != Caller::Admin {
            return anyhow::Ok(None);
        }
        // Dead counts the dead letters too, as `GET /api/v1/queue` does: the queue page lists them.
        let d = shared::queue::depth(&mut r2, &state.config).await?;
        let letters = shared::store::open_dead_count(&state.db).await?;
        Ok(Some(QueueDepth { dead: d.dead + u64::try_from(letters).unwrap_or(0), ..d }))
    };
    let groups = async {
        if shows_groups(view.filter) {
            flagged_groups(&state.db, scope, groups::MAX_GROUPS, groups::LISTED).await
        } else {
            Ok((Vec::new(), 0))
        }
    };
    let offset = |page: usize| i64::try_from(page.saturating_sub(1).saturating_mul(PAGE_SIZE)).unwrap_or(i64::MAX);
    let limit = PAGE_SIZE as i64;
    let (counts, rows, groups, depth, outcomes) = tokio::join!(
        status_counts(&state.db, scope),
        inbox_page(&state.db, &mut r1, keys, scope, view.filter, limit, offset(view.page)),
        groups,
        depth,
        hourly_outcomes(&state.db, 24, accounts.as_deref()),
    );
    let counts = counts?;
    let mut rows = rows?;
    let pages = pages(counts.of(view.filter));
    if view.page > pages {
        view.page = pages;
        rows = inbox_page(&state.db, &mut r1, keys, scope, view.filter, limit, offset(pages)).await?;
    }
    Ok(Data { counts, rows, groups: groups?, depth: depth?, outcomes: outcomes? })
}

fn pages(total: i64) -> usize {
    usize::try_from(total).unwrap_or(0).div_ceil(PAGE_SIZE).max(1)
}

pub fn who(t: &Strings, caller: &Caller) -> String {
    match caller {
        Caller::Admin => t.admin_caller.to_owned(),
        Caller::Account(a) => t.account_caller.replace("{id}", &a.to_string()),
        Caller::User { user_id, .. } => t.user_caller.replace("{id}", &user_id.to_string()),
    }
}

fn render(
    state: &AppState,
    locale: Locale,
    caller: &Caller,
    query: &HashMap<String, String>,
    view: &View,
    data: &Data,
    now: DateTime<Utc>,
) -> Markup {
    let t = locale.t();
    // A refresh without JavaScript comes back here as `?done=INBOX:OUTCOME`.
    let done = query.get("done").and_then(|d| d.split_once(':')).and_then(|(id, n)| {
        let id: i64 = id.parse().ok()?;
        Some((id, Notice::parse(n)?))
    });
    let table = Table {
        locale,
        now,
        show_account: caller.spans_accounts(),
        reconnect_template: &state.config.reconnect_url_template,
        caller,
    };
    let (groups, total_groups) = &data.groups;
    html! {
        (layout::top_bar(locale, Some(&who(t, caller)), &view.here()))
        main {
            (counts(locale, view, &data.counts))
            div class={ "panels" (if data.depth.is_none() { " single" } else { "" }) } {
                @if let Some(d) = &data.depth { section.card.queue { (queue_panel(locale, t, d)) } }
                section.card { (chart::chart(locale, &data.outcomes, now)) }
            }
            (groups::section(locale, &state.config.reconnect_url_template, groups, *total_groups))
            section.card {
                div.table-head { h2 { (t.inboxes) } (search_form(locale, view)) }
                table.inboxes {
                    (table.head())
                    @for s in &data.rows {
                        (table.block(s, done.filter(|(id, _)| *id == s.inbox_id).map(|(_, n)| n)))
                    }
                    @if data.rows.is_empty() { (table.empty(view.search.as_ref().map(|s| s.text.as_str()))) }
                }
                (pager(locale, view, data.counts.of(view.filter)))
            }
        }
    }
}

fn counts(locale: Locale, view: &View, counts: &StatusCounts) -> Markup {
    let t = locale.t();
    let link = |f: Option<&str>, label: &str, class: &str| {
        html! {
            a class={ "count " (class) (if f == view.filter { " on" } else { "" }) } href=(locale.link(&view.href(f, None)))
                data-status=(f.unwrap_or("all")) {
                span.n { (counts.of(f)) } (label)
            }
        }
    };
    html! {
        nav.counts {
            (link(None, t.all, "all"))
            @for f in FILTERS {
                (link(Some(f), if f == "attention" { t.needs_attention } else { t.status(f) }, &format!("c-{f}")))
            }
        }
    }
}

/// A plain GET form: the filter and the language stay, the page starts again at 1.
fn search_form(locale: Locale, view: &View) -> Markup {
    let t = locale.t();
    let lang = locale.query().and_then(|q| q.strip_prefix("lang="));
    let value = view.search.as_ref().map_or("", |s| s.text.as_str());
    html! {
        form.search method="get" action="/" role="search" {
            @if let Some(f) = view.filter { input type="hidden" name="status" value=(f); }
            @if let Some(lang) = lang { input type="hidden" name="lang" value=(lang); }
            label for="q" { (t.search_label) }
            input #q type="search" name="q" value=(Text(value)) placeholder=(t.search_placeholder) maxlength="200";
            button.btn.secondary type="submit" { (t.search_button) }
            @if view.search.is_some() {
                a.clear href=(locale.link(&View { search: None, page: 1, ..view.clone() }.here())) { (t.search_clear) }
            }
        }
    }
}

fn queue_panel(locale: Locale, t: &Strings, d: &QueueDepth) -> Markup {
    let rows = [
        (t.queue_pending, d.pending, "pending", false),
        (t.queue_scheduled, d.scheduled, "scheduled", false),
        (t.queue_running, d.running, "running", false),
        (t.queue_deferred, d.deferred, "deferred", false),
        (t.queue_dead, d.dead, "dead", true),
    ];
    html! {
        h2 { (t.queue) }
        dl {
            @for (label, n, key, bad) in rows {
                dt { (label) }
                dd data-queue=(key) class=[(bad && n > 0).then_some("bad")] { (n) }
            }
        }
        p { a href=(locale.link("/dashboard/queue")) data-open-queue { (t.queue_open) } }
    }
}

fn pager(locale: Locale, view: &View, total: i64) -> Markup {
    let pages = pages(total);
    if pages <= 1 {
        return html! {};
    }
    let t = locale.t();
    let page = view.page.min(pages);
    let total = usize::try_from(total).unwrap_or(0);
    let href = |p: usize| locale.link(&view.href(view.filter, Some(p)));
    let from = (page - 1) * PAGE_SIZE + 1;
    let to = (page * PAGE_SIZE).min(total);
    let showing = t
        .showing
        .replace("{from}", &from.to_string())
        .replace("{to}", &to.to_string())
        .replace("{total}", &total.to_string());
    html! {
        nav.pager data-page=(page) data-pages=(pages) {
            span { (showing) }
            @if page > 1 { a rel="prev" href=(href(page - 1)) { (t.previous) } }
            @if page < pages { a rel="next" href=(href(page + 1)) { (t.next) } }
        }
    }
}

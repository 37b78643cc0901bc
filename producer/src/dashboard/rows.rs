//! The inbox table: one `<tbody id="inbox-N">` per inbox (its row, then its banner or a notice),
//! so "Try auto refresh" can swap exactly one inbox in place.

use chrono::{DateTime, Utc};
use maud::{Markup, html};
use shared::status::InboxStatus;

use crate::auth::Caller;

use super::{
    banner,
    html::{Text, when},
    locale::Locale,
};

/// What the table needs besides the inboxes.
#[derive(Debug, Clone, Copy)]
pub struct Table<'a> {
    pub locale: Locale,
    pub now: DateTime<Utc>,
    /// Admins see every account, so the account column is shown.
    pub show_account: bool,
    pub reconnect_template: &'a str,
    /// Whose table it is: "Try auto refresh" is offered only where they may refresh.
    pub caller: &'a Caller,
}

/// The outcome of a "Try auto refresh", shown in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    Refreshed,
    Healthy,
    StillFailing,
    Pending,
    Error,
}

impl Notice {
    pub fn name(self) -> &'static str {
        match self {
            Self::Refreshed => "refreshed",
            Self::Healthy => "healthy",
            Self::StillFailing => "still_failing",
            Self::Pending => "pending",
            Self::Error => "error",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Refreshed, Self::Healthy, Self::StillFailing, Self::Pending, Self::Error]
            .into_iter()
            .find(|n| n.name() == raw)
    }

    pub fn text(self, locale: Locale) -> &'static str {
        let t = locale.t();
        match self {
            Self::Refreshed => t.result_refreshed,
            Self::Healthy => t.result_healthy,
            Self::StillFailing => t.result_still_failing,
            Self::Pending => t.result_pending,
            Self::Error => t.result_error,
        }
    }
}

impl Table<'_> {
    fn columns(&self) -> usize {
        if self.show_account { 6 } else { 5 }
    }

    pub fn head(&self) -> Markup {
        let t = self.locale.t();
        html! {
            thead { tr {
                th { (t.col_inbox) }
                th { (t.col_page) }
                @if self.show_account { th { (t.col_account) } }
                th { (t.col_status) }
                th { (t.col_checked) }
                th { (t.col_refreshed) }
            } }
        }
    }

    /// One inbox: its row, its banner when it needs reconnecting, and the notice of a refresh.
    pub fn block(&self, s: &InboxStatus, notice: Option<Notice>) -> Markup {
        let t = self.locale.t();
        let why = s.needs_attention().then(|| {
            if s.consecutive_failures > 0 && !s.reauthorization_required {
                t.keeps_failing.replace("{n}", &s.consecutive_failures.to_string())
            } else {
                (if s.reauthorization_required { t.reconnection_required } else { t.needs_attention }).to_owned()
            }
        });
        let cols = self.columns();
        let status = s.status.as_str();
        html! {
            tbody.inbox id={ "inbox-" (s.inbox_id) } data-status=(status) {
                tr {
                    td {
                        @if let Some(why) = &why { span.warn title=(why) aria-label=(why) role="img" { "⚠" } }
                        strong.name { (Text(&s.inbox_name)) }
                        " "
                        span.muted { "#" (s.inbox_id) }
                    }
                    td.mono { (Text(&s.page_id)) }
                    @if self.show_account { td.mono { (s.account_id) } }
                    td { span class={ "badge s-" (status) } { (t.status(status)) } }
                    td { (when(t, s.last_checked, self.now)) }
                    td { (when(t, s.last_refreshed, self.now)) }
                }
                @if s.reauthorization_required {
                    @let result = notice.map(|n| (if n == Notice::Pending { "progress" } else { "error" }, n.text(self.locale)));
                    tr.banner-row {
                        td colspan=(cols) {
                            (banner::banner(self.locale, self.reconnect_template, s, result, self.caller.may_refresh(s.account_id)))
                        }
                    }
                } @else if let Some(n) = notice {
                    @let class = match n {
                        Notice::Refreshed | Notice::Healthy => "notice",
                        _ => "notice pending",
                    };
                    tr.notice-row { td colspan=(cols) { div class=(class) role="status" { (n.text(self.locale)) } } }
                }
                @if s.warning().is_some() && !s.reauthorization_required {
                    @let until = s.data_access_expires_at.map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_default();
                    tr.notice-row {
                        td colspan=(cols) {
                            div.notice.pending role="status" { (t.data_access_expiring.replace("{date}", &until)) }
                        }
                    }
                }
                @if let Some(note) = subscription_note(self.locale, s) {
                    tr.notice-row { td colspan=(cols) { (note) } }
                }
            }
        }
    }

    /// `search`: what was searched for, when the search found nothing.
    pub fn empty(&self, search: Option<&str>) -> Markup {
        let t = self.locale.t();
        let text = search.map_or_else(|| t.no_inboxes.to_owned(), |q| t.no_match.replace("{q}", q));
        html! { tbody { tr { td colspan=(self.columns()) class="empty" { (Text(&text)) } } } }
    }
}

/// What the last webhook subscription check did, when a person may want to know: the page had lost
/// this app (and got it back, or not), or the check failed.
fn subscription_note(locale: Locale, s: &InboxStatus) -> Option<Markup> {
    let t = locale.t();
    let sub = &s.subscription;
    let error = sub.last_error.as_ref().map(|e| e.message.as_str()).unwrap_or("");
    let (class, text) = match sub.state.as_str() {
        "resubscribed" => {
            let at = sub.resubscribed_at.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_default();
            ("notice", t.subscription_resubscribed.replace("{when}", &at))
        }
        "missing" => ("notice pending", t.subscription_missing.replace("{error}", error)),
        "failed" => ("notice pending", t.subscription_failed.replace("{error}", error)),
        _ => return None,
    };
    Some(html! {
        div class={ (class) " subscription" } role="status" data-subscription=(sub.state) { (Text(&text)) }
    })
}

#[cfg(test)]
mod tests {
    use shared::status::{LastError, Subscription};

    use super::*;
    use crate::dashboard::locale::Lang;

    fn inbox(state: &str, message: Option<&str>) -> InboxStatus {
        InboxStatus {
            inbox_id: 1,
            account_id: 1,
            inbox_name: "x".into(),
            channel_id: 1,
            page_id: "1".into(),
            token_valid: Some(true),
            status: shared::store::TokenStatus::Healthy,
            reauthorization_required: false,
            authorization_error_count: 0,
            consecutive_failures: 0,
            last_checked: None,
            last_refreshed: None,
            next_attempt_at: None,
            last_error: None,
            expires_at: None,
            data_access_expires_at: None,
            subscription: Subscription {
                state: state.into(),
                resubscribed_at: chrono::DateTime::from_timestamp(1_767_225_600, 0),
                last_error: message.map(|m| LastError {
                    kind: None,
                    code: Some(200),
                    subcode: None,
                    message: m.into(),
                }),
                ..Subscription::default()
            },
        }
    }

    #[test]
    fn a_subscription_note_only_when_there_is_something_to_say() {
        let en = Locale { lang: Lang::En, explicit: false };
        for quiet in ["subscribed", "unknown", ""] {
            assert_eq!(subscription_note(en, &inbox(quiet, None)).map(Markup::into_string), None, "{quiet}");
        }
        let note = subscription_note(en, &inbox("resubscribed", None)).expect("note").into_string();
        assert!(note.contains("2026-01-01 00:00 UTC") && note.contains("data-subscription=\"resubscribed\""), "{note}");
        let note = subscription_note(en, &inbox("missing", Some("<b>(#200)</b>"))).expect("note").into_string();
        assert!(note.contains("&lt;b&gt;(#200)&lt;/b&gt;") && !note.contains("<b>"), "escaped: {note}");
        let vi = Locale { lang: Lang::Vi, explicit: true };
        assert!(subscription_note(vi, &inbox("failed", Some("x"))).expect("note").into_string().contains("Webhook"));
    }
}

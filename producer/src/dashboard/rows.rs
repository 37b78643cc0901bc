//! The inbox table: one `<tbody id="inbox-N">` per inbox (its row, then its banner or a notice),
//! so "Try auto refresh" can swap exactly one inbox in place.

use chrono::{DateTime, Utc};
use shared::status::InboxStatus;

use crate::auth::Caller;

use super::{
    banner,
    html::{escape_html, fill, when},
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

    pub fn head(&self) -> String {
        let t = self.locale.t();
        let account =
            if self.show_account { format!("<th>{}</th>", escape_html(t.col_account)) } else { String::new() };
        format!(
            "<thead><tr><th>{inbox}</th><th>{page}</th>{account}<th>{status}</th><th>{checked}</th>\
             <th>{refreshed}</th></tr></thead>",
            inbox = escape_html(t.col_inbox),
            page = escape_html(t.col_page),
            status = escape_html(t.col_status),
            checked = escape_html(t.col_checked),
            refreshed = escape_html(t.col_refreshed),
        )
    }

    /// One inbox: its row, its banner when it needs reconnecting, and the notice of a refresh.
    pub fn block(&self, s: &InboxStatus, notice: Option<Notice>) -> String {
        let t = self.locale.t();
        let warn = if s.needs_attention() {
            let why = if s.consecutive_failures > 0 && !s.reauthorization_required {
                fill(t.keeps_failing, &[("n", &s.consecutive_failures.to_string())])
            } else {
                escape_html(if s.reauthorization_required { t.reconnection_required } else { t.needs_attention })
            };
            format!("<span class=\"warn\" title=\"{why}\" aria-label=\"{why}\" role=\"img\">⚠</span>")
        } else {
            String::new()
        };
        let account =
            if self.show_account { format!("<td class=\"mono\">{}</td>", s.account_id) } else { String::new() };
        let mut out = format!(
            "<tbody class=\"inbox\" id=\"inbox-{id}\" data-status=\"{status}\"><tr>\
             <td>{warn}<strong class=\"name\">{name}</strong> <span class=\"muted\">#{id}</span></td>\
             <td class=\"mono\">{page}</td>{account}\
             <td><span class=\"badge s-{status}\">{label}</span></td><td>{checked}</td><td>{refreshed}</td></tr>",
            id = s.inbox_id,
            status = escape_html(s.status.as_str()),
            name = escape_html(&s.inbox_name),
            page = escape_html(&s.page_id),
            label = escape_html(t.status(s.status.as_str())),
            checked = when(t, s.last_checked, self.now).into_string(),
            refreshed = when(t, s.last_refreshed, self.now).into_string(),
        );
        let cols = self.columns();
        if s.reauthorization_required {
            let result = notice.map(|n| (if n == Notice::Pending { "progress" } else { "error" }, n.text(self.locale)));
            out.push_str(&format!(
                "<tr class=\"banner-row\"><td colspan=\"{cols}\">{}</td></tr>",
                banner::banner(self.locale, self.reconnect_template, s, result, self.caller.may_refresh(s.account_id))
                    .into_string()
            ));
        } else if let Some(n) = notice {
            let class = match n {
                Notice::Refreshed | Notice::Healthy => "notice",
                _ => "notice pending",
            };
            out.push_str(&format!(
                "<tr class=\"notice-row\"><td colspan=\"{cols}\"><div class=\"{class}\" role=\"status\">{}</div></td></tr>",
                escape_html(n.text(self.locale))
            ));
        }
        if s.warning().is_some() && !s.reauthorization_required {
            let until = s.data_access_expires_at.map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_default();
            out.push_str(&format!(
                "<tr class=\"notice-row\"><td colspan=\"{cols}\"><div class=\"notice pending\" role=\"status\">{}</div></td></tr>",
                fill(t.data_access_expiring, &[("date", &until)])
            ));
        }
        if let Some(note) = subscription_note(self.locale, s) {
            out.push_str(&format!("<tr class=\"notice-row\"><td colspan=\"{cols}\">{note}</td></tr>"));
        }
        out.push_str("</tbody>");
        out
    }

    /// `search`: what was searched for, when the search found nothing.
    pub fn empty(&self, search: Option<&str>) -> String {
        let t = self.locale.t();
        let text = search.map_or_else(|| escape_html(t.no_inboxes), |q| fill(t.no_match, &[("q", q)]));
        format!("<tbody><tr><td colspan=\"{}\" class=\"empty\">{text}</td></tr></tbody>", self.columns())
    }
}

/// What the last webhook subscription check did, when a person may want to know: the page had lost
/// this app (and got it back, or not), or the check failed.
fn subscription_note(locale: Locale, s: &InboxStatus) -> Option<String> {
    let t = locale.t();
    let sub = &s.subscription;
    let error = sub.last_error.as_ref().map(|e| e.message.as_str()).unwrap_or("");
    let (class, text) = match sub.state.as_str() {
        "resubscribed" => {
            let at = sub.resubscribed_at.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_default();
            ("notice", fill(t.subscription_resubscribed, &[("when", &at)]))
        }
        "missing" => ("notice pending", fill(t.subscription_missing, &[("error", error)])),
        "failed" => ("notice pending", fill(t.subscription_failed, &[("error", error)])),
        _ => return None,
    };
    Some(format!(
        "<div class=\"{class} subscription\" role=\"status\" data-subscription=\"{}\">{text}</div>",
        escape_html(&sub.state)
    ))
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
            assert_eq!(subscription_note(en, &inbox(quiet, None)), None, "{quiet}");
        }
        let note = subscription_note(en, &inbox("resubscribed", None)).expect("note");
        assert!(note.contains("2026-01-01 00:00 UTC") && note.contains("data-subscription=\"resubscribed\""), "{note}");
        let note = subscription_note(en, &inbox("missing", Some("<b>(#200)</b>"))).expect("note");
        assert!(note.contains("&lt;b&gt;(#200)&lt;/b&gt;") && !note.contains("<b>"), "escaped: {note}");
        let vi = Locale { lang: Lang::Vi, explicit: true };
        assert!(subscription_note(vi, &inbox("failed", Some("x"))).expect("note").contains("Webhook"));
    }
}

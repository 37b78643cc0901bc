//! The red "Reconnection required" strip of an inbox that needs a person: the cause in plain
//! words, then "Try auto refresh" and "Reconnect manually". What to do and Facebook's own message
//! are said once per Facebook user above the table (`groups`), not once per inbox.

use maud::{Markup, html};
use shared::status::{InboxStatus, LastError};

use super::{causes::Cause, html::Text, locale::Locale};

/// Where "Reconnect manually" goes for an inbox.
pub fn reconnect_url(template: &str, account_id: i64, inbox_id: i64) -> String {
    template.replace("{account_id}", &account_id.to_string()).replace("{inbox_id}", &inbox_id.to_string())
}

/// The dashboard endpoint behind "Try auto refresh".
pub fn refresh_action(locale: Locale, inbox_id: i64) -> String {
    locale.link(&format!("/dashboard/inboxes/{inbox_id}/refresh"))
}

/// A line under the actions: the outcome of the last "Try auto refresh" (class, text).
pub type Result<'a> = Option<(&'static str, &'a str)>;

/// `can_refresh`: whether the viewer may start a refresh; a Chatwoot agent sees the button
/// disabled, with why, rather than one that only answers 403.
pub fn banner(locale: Locale, template: &str, s: &InboxStatus, result: Result<'_>, can_refresh: bool) -> Markup {
    let t = locale.t();
    let cause = Cause::of(s.last_error.as_ref()).text(t);
    let (result_class, result_text) = result.unwrap_or(("", ""));
    html! {
        div.banner.compact role="alert" {
            strong.title { "⚠ " (t.reconnection_required) }
            " "
            span.cause { (cause.what) }
            div.actions {
                (auto_refresh(locale, s.inbox_id, can_refresh))
                a.btn.secondary.reconnect href=(reconnect_url(template, s.account_id, s.inbox_id)) rel="noopener" {
                    (t.reconnect_manually)
                }
                p class={ "result " (result_class) } id={ "result-" (s.inbox_id) } role="status" aria-live="polite" {
                    (result_text)
                }
            }
        }
    }
}

/// The cause in full: what happened, what to do, and what Facebook said (code, subcode, message).
pub fn cause_in_full(locale: Locale, error: Option<&LastError>) -> Markup {
    let t = locale.t();
    let cause = Cause::of(error).text(t);
    html! {
        p.cause { (cause.what) }
        p.todo { strong { (t.what_to_do) } " " (cause.todo) }
        @if let Some(e) = error {
            p.graph {
                (t.facebook_said)
                @match (e.code, e.subcode) {
                    (Some(c), Some(sc)) => { " (" (c) "/" (sc) ")" },
                    (Some(c), None) => { " (" (c) ")" },
                    _ => {},
                }
                ": " (Text(&e.message))
            }
        }
    }
}

fn auto_refresh(locale: Locale, inbox_id: i64, can_refresh: bool) -> Markup {
    let t = locale.t();
    html! {
        @if can_refresh {
            form method="post" action=(refresh_action(locale, inbox_id)) data-refresh=(inbox_id)
                data-progress=(t.refreshing) data-failed=(t.result_error) {
                button.btn.primary type="submit" name="auto_refresh" { (t.try_auto_refresh) }
            }
        } @else {
            button.btn.primary type="button" disabled aria-disabled="true" title=(t.refresh_needs_admin) {
                (t.try_auto_refresh)
            }
            p.muted.needs-admin { (t.refresh_needs_admin) }
        }
    }
}

#[cfg(test)]
mod tests {
    use shared::status::LastError;

    use super::*;
    use crate::dashboard::locale::Lang;

    fn flagged(name: &str, message: &str) -> InboxStatus {
        InboxStatus {
            inbox_id: 7,
            account_id: 3,
            inbox_name: name.into(),
            channel_id: 9,
            page_id: "123".into(),
            token_valid: Some(false),
            status: shared::store::TokenStatus::ReauthorizationRequired,
            reauthorization_required: true,
            authorization_error_count: 2,
            consecutive_failures: 2,
            last_checked: None,
            last_refreshed: None,
            next_attempt_at: None,
            expires_at: None,
            data_access_expires_at: None,
            subscription: Default::default(),
            last_error: Some(LastError {
                kind: Some("auth".into()),
                code: Some(190),
                subcode: Some(460),
                message: message.into(),
            }),
        }
    }

    #[test]
    fn cause_actions_in_order_and_escaped() {
        let en = Locale { lang: Lang::En, explicit: false };
        let html = banner(
            en,
            "/app/accounts/{account_id}/settings/inboxes/{inbox_id}",
            &flagged("x", "<img src=x>"),
            None,
            true,
        )
        .into_string();
        assert!(html.contains("Reconnection required"));
        assert!(html.contains("changed their password"));
        assert!(!html.contains("img src") && !html.contains("What to do"), "said once per group: {html}");
        let full = cause_in_full(en, flagged("x", "<img src=x>").last_error.as_ref()).into_string();
        assert!(full.contains("(190/460): &lt;img src=x&gt;") && full.contains("new password"), "{full}");
        let auto = html.find("Try auto refresh").expect("auto");
        let manual = html.find("Reconnect manually").expect("manual");
        assert!(auto < manual);
        assert!(html.contains("href=\"/app/accounts/3/settings/inboxes/7\""));
        assert!(html.contains("action=\"/dashboard/inboxes/7/refresh\""));
    }

    #[test]
    fn vietnamese_keeps_the_explicit_language_in_the_action() {
        let vi = Locale { lang: Lang::Vi, explicit: true };
        let html =
            banner(vi, "https://x.example/{inbox_id}?a={account_id}", &flagged("x", "m"), None, true).into_string();
        assert!(html.contains("Cần kết nối lại") && html.contains("Thử refresh tự động"));
        assert!(html.contains("Kết nối lại thủ công"));
        assert!(html.contains("action=\"/dashboard/inboxes/7/refresh?lang=vi\""));
        assert!(html.contains("href=\"https://x.example/7?a=3\""));
    }

    #[test]
    fn an_agent_sees_the_button_disabled_and_why() {
        let en = Locale { lang: Lang::En, explicit: false };
        let html = banner(en, "/x/{inbox_id}", &flagged("x", "m"), None, false).into_string();
        assert!(!html.contains("<form") && !html.contains("/dashboard/inboxes/7/refresh"), "{html}");
        assert!(html.contains("disabled") && html.contains("Only an administrator"), "{html}");
        assert!(html.contains("Reconnect manually"));
    }
}

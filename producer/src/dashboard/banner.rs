//! The red "Reconnection required" strip of an inbox that needs a person: the cause in plain
//! words, then "Try auto refresh" and "Reconnect manually". What to do and Facebook's own message
//! are said once per Facebook user above the table (`groups`), not once per inbox.

use shared::status::{InboxStatus, LastError};

use super::{causes::Cause, html::escape_html, locale::Locale};

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
pub fn banner(locale: Locale, template: &str, s: &InboxStatus, result: Result<'_>, can_refresh: bool) -> String {
    let t = locale.t();
    let cause = Cause::of(s.last_error.as_ref()).text(t);
    let (result_class, result_text) = result.unwrap_or(("", ""));
    format!(
        "<div class=\"banner compact\" role=\"alert\"><strong class=\"title\">⚠ {title}</strong> \
         <span class=\"cause\">{what}</span>\
         <div class=\"actions\">{auto}\
         <a class=\"btn secondary reconnect\" href=\"{reconnect}\" rel=\"noopener\">{manually}</a>\
         <p class=\"result {result_class}\" id=\"result-{id}\" role=\"status\" aria-live=\"polite\">{result_text}</p>\
         </div></div>",
        title = escape_html(t.reconnection_required),
        what = escape_html(cause.what),
        auto = auto_refresh(locale, s.inbox_id, can_refresh),
        id = s.inbox_id,
        reconnect = escape_html(&reconnect_url(template, s.account_id, s.inbox_id)),
        manually = escape_html(t.reconnect_manually),
        result_text = escape_html(result_text),
    )
}

/// The cause in full: what happened, what to do, and what Facebook said (code, subcode, message).
pub fn cause_in_full(locale: Locale, error: Option<&LastError>) -> String {
    let t = locale.t();
    let cause = Cause::of(error).text(t);
    let graph = match error {
        Some(e) => {
            let code = match (e.code, e.subcode) {
                (Some(c), Some(sc)) => format!(" ({c}/{sc})"),
                (Some(c), None) => format!(" ({c})"),
                _ => String::new(),
            };
            format!(
                "<p class=\"graph\">{said}{code}: {message}</p>",
                said = escape_html(t.facebook_said),
                message = escape_html(&e.message),
            )
        }
        None => String::new(),
    };
    format!(
        "<p class=\"cause\">{what}</p><p class=\"todo\"><strong>{what_to_do}</strong> {todo}</p>{graph}",
        what = escape_html(cause.what),
        what_to_do = escape_html(t.what_to_do),
        todo = escape_html(cause.todo),
    )
}

fn auto_refresh(locale: Locale, inbox_id: i64, can_refresh: bool) -> String {
    let t = locale.t();
    if !can_refresh {
        return format!(
            "<button class=\"btn primary\" type=\"button\" disabled aria-disabled=\"true\" title=\"{why}\">{try_auto}</button>\
             <p class=\"muted needs-admin\">{why}</p>",
            why = escape_html(t.refresh_needs_admin),
            try_auto = escape_html(t.try_auto_refresh),
        );
    }
    format!(
        "<form method=\"post\" action=\"{action}\" data-refresh=\"{inbox_id}\" data-progress=\"{progress}\" data-failed=\"{failed}\">\
         <button class=\"btn primary\" type=\"submit\" name=\"auto_refresh\">{try_auto}</button></form>",
        action = escape_html(&refresh_action(locale, inbox_id)),
        progress = escape_html(t.refreshing),
        failed = escape_html(t.result_error),
        try_auto = escape_html(t.try_auto_refresh),
    )
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
        );
        assert!(html.contains("Reconnection required"));
        assert!(html.contains("changed their password"));
        assert!(!html.contains("img src") && !html.contains("What to do"), "said once per group: {html}");
        let full = cause_in_full(en, flagged("x", "<img src=x>").last_error.as_ref());
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
        let html = banner(vi, "https://x.example/{inbox_id}?a={account_id}", &flagged("x", "m"), None, true);
        assert!(html.contains("Cần kết nối lại") && html.contains("Thử refresh tự động"));
        assert!(html.contains("Kết nối lại thủ công"));
        assert!(html.contains("action=\"/dashboard/inboxes/7/refresh?lang=vi\""));
        assert!(html.contains("href=\"https://x.example/7?a=3\""));
    }

    #[test]
    fn an_agent_sees_the_button_disabled_and_why() {
        let en = Locale { lang: Lang::En, explicit: false };
        let html = banner(en, "/x/{inbox_id}", &flagged("x", "m"), None, false);
        assert!(!html.contains("<form") && !html.contains("/dashboard/inboxes/7/refresh"), "{html}");
        assert!(html.contains("disabled") && html.contains("Only an administrator"), "{html}");
        assert!(html.contains("Reconnect manually"));
    }
}

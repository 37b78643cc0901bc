//! The inboxes that need reconnecting, one red banner per Facebook user who connected them: the
//! cause once, "one reconnect fixes these N pages", and the inboxes (each a link to reconnect it).
//! Many pages connected by one person all die together (a changed password, a removed app), and
//! one reconnect by that person fixes them all: a banner per inbox said the same thing N times.

use maud::{Markup, html};
use shared::{
    status::LastError,
    store::dashboard::{FlaggedGroup, GroupInbox},
};

use super::{
    banner::{cause_in_full, reconnect_url},
    html::Text,
    locale::Locale,
};

/// Groups shown; the rest are counted (the "Reconnection required" filter lists their inboxes).
pub const MAX_GROUPS: i64 = 20;
/// Inboxes named per group; the rest are counted.
pub const LISTED: i32 = 25;

/// `total`: how many groups there are, of which `groups` are the largest.
pub fn section(locale: Locale, template: &str, groups: &[FlaggedGroup], total: i64) -> Markup {
    if groups.is_empty() {
        return html! {};
    }
    let t = locale.t();
    let hidden = total - groups.len() as i64;
    html! {
        section.groups aria-label=(t.groups_heading) {
            @for g in groups { (group(locale, template, g)) }
            @if hidden > 0 {
                p.more-groups {
                    a href=(locale.link("/?status=reauthorization_required")) {
                        (t.groups_more.replace("{n}", &hidden.to_string()))
                    }
                }
            }
        }
    }
}

fn group(locale: Locale, template: &str, g: &FlaggedGroup) -> Markup {
    let t = locale.t();
    let error = g.error_message.clone().map(|message| LastError {
        kind: g.error_kind.clone(),
        code: g.error_code,
        subcode: g.error_subcode,
        message,
    });
    let fixes = if g.pages == 1 {
        t.group_fixes_one.to_owned()
    } else {
        t.group_fixes_many.replace("{n}", &g.pages.to_string())
    };
    let link = |i: &GroupInbox| reconnect_url(template, i.account_id, i.inbox_id);
    let unlisted = g.pages - g.inboxes.len() as i64;
    html! {
        div.banner.group role="alert" data-pages=(g.pages) {
            strong.title { "⚠ " (t.reconnection_required) }
            (cause_in_full(locale, error.as_ref()))
            p.fixes { strong { (fixes) } }
            ul.group-inboxes {
                @for i in &g.inboxes {
                    li data-inbox=(i.inbox_id) {
                        a href=(link(i)) rel="noopener" { (Text(&i.name)) }
                        " "
                        span.muted.mono { "#" (i.inbox_id) " · " (Text(&i.page_id)) }
                    }
                }
            }
            @if unlisted > 0 { p.muted { (t.group_more.replace("{n}", &unlisted.to_string())) } }
            // Reconnecting any one of them as that user renews the token of all.
            @if let Some(first) = g.inboxes.first() {
                div.actions { a.btn.secondary.reconnect href=(link(first)) rel="noopener" { (t.reconnect_manually) } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashboard::locale::Lang;

    fn inbox(id: i64, name: &str) -> GroupInbox {
        GroupInbox { inbox_id: id, account_id: 3, name: name.into(), page_id: format!("p{id}") }
    }

    fn flagged(pages: i64, inboxes: Vec<GroupInbox>) -> FlaggedGroup {
        FlaggedGroup {
            pages,
            inboxes,
            error_kind: Some("auth".into()),
            error_code: Some(190),
            error_subcode: Some(460),
            error_message: Some("<b>gone</b>".into()),
        }
    }

    #[test]
    fn one_banner_per_user_with_the_cause_once() {
        let en = Locale { lang: Lang::En, explicit: false };
        let g = flagged(30, vec![inbox(1, "A <i>"), inbox(2, "B")]);
        let html = section(en, "/app/{account_id}/{inbox_id}", &[g], 3).into_string();
        assert_eq!(html.matches("class=\"banner group\"").count(), 1);
        assert_eq!(html.matches("changed their password").count(), 1, "{html}");
        assert!(html.contains("One reconnect fixes these 30 pages") && html.contains("…and 28 more."), "{html}");
        assert!(html.contains("href=\"/app/3/1\"") && html.contains("A &lt;i&gt;") && !html.contains("<b>gone"));
        assert!(html.contains("2 more Facebook users"), "{html}");
        let vi = Locale { lang: Lang::Vi, explicit: true };
        let html = section(vi, "/{inbox_id}", &[flagged(1, vec![inbox(5, "x")])], 1).into_string();
        assert!(html.contains("Kết nối lại sẽ khắc phục trang này") && !html.contains("more-groups"), "{html}");
        assert_eq!(section(en, "/", &[], 0).into_string(), "");
    }
}

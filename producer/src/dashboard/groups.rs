//! The inboxes that need reconnecting, one red banner per Facebook user who connected them: the
//! cause once, "one reconnect fixes these N pages", and the inboxes (each a link to reconnect it).
//! Many pages connected by one person all die together (a changed password, a removed app), and
//! one reconnect by that person fixes them all: a banner per inbox said the same thing N times.

use shared::{
    status::LastError,
    store::dashboard::{FlaggedGroup, GroupInbox},
};

use super::{
    banner::{cause_in_full, reconnect_url},
    html::{escape_html, fill},
    locale::Locale,
};

/// Groups shown; the rest are counted (the "Reconnection required" filter lists their inboxes).
pub const MAX_GROUPS: i64 = 20;
/// Inboxes named per group; the rest are counted.
pub const LISTED: i32 = 25;

/// `total`: how many groups there are, of which `groups` are the largest.
pub fn section(locale: Locale, template: &str, groups: &[FlaggedGroup], total: i64) -> String {
    if groups.is_empty() {
        return String::new();
    }
    let t = locale.t();
    let mut out = format!("<section class=\"groups\" aria-label=\"{}\">", escape_html(t.groups_heading));
    for g in groups {
        out.push_str(&group(locale, template, g));
    }
    let hidden = total - groups.len() as i64;
    if hidden > 0 {
        let href = locale.link("/?status=reauthorization_required");
        out.push_str(&format!(
            "<p class=\"more-groups\"><a href=\"{}\">{}</a></p>",
            escape_html(&href),
            fill(t.groups_more, &[("n", &hidden.to_string())])
        ));
    }
    out.push_str("</section>");
    out
}

fn group(locale: Locale, template: &str, g: &FlaggedGroup) -> String {
    let t = locale.t();
    let error = g.error_message.clone().map(|message| LastError {
        kind: g.error_kind.clone(),
        code: g.error_code,
        subcode: g.error_subcode,
        message,
    });
    let fixes = if g.pages == 1 {
        escape_html(t.group_fixes_one)
    } else {
        fill(t.group_fixes_many, &[("n", &g.pages.to_string())])
    };
    let link = |i: &GroupInbox| escape_html(&reconnect_url(template, i.account_id, i.inbox_id));
    let mut list = String::from("<ul class=\"group-inboxes\">");
    for i in &g.inboxes {
        list.push_str(&format!(
            "<li data-inbox=\"{id}\"><a href=\"{href}\" rel=\"noopener\">{name}</a> \
             <span class=\"muted mono\">#{id} · {page}</span></li>",
            id = i.inbox_id,
            href = link(i),
            name = escape_html(&i.name),
            page = escape_html(&i.page_id),
        ));
    }
    list.push_str("</ul>");
    let unlisted = g.pages - g.inboxes.len() as i64;
    if unlisted > 0 {
        list.push_str(&format!("<p class=\"muted\">{}</p>", fill(t.group_more, &[("n", &unlisted.to_string())])));
    }
    // Reconnecting any one of them as that user renews the token of all.
    let reconnect = g.inboxes.first().map_or_else(String::new, |first| {
        format!(
            "<div class=\"actions\"><a class=\"btn secondary reconnect\" href=\"{}\" rel=\"noopener\">{}</a></div>",
            link(first),
            escape_html(t.reconnect_manually)
        )
    });
    format!(
        "<div class=\"banner group\" role=\"alert\" data-pages=\"{pages}\"><strong class=\"title\">⚠ {title}</strong>\
         {cause}<p class=\"fixes\"><strong>{fixes}</strong></p>{list}{reconnect}</div>",
        pages = g.pages,
        title = escape_html(t.reconnection_required),
        cause = cause_in_full(locale, error.as_ref()),
    )
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
        let html = section(en, "/app/{account_id}/{inbox_id}", &[g], 3);
        assert_eq!(html.matches("class=\"banner group\"").count(), 1);
        assert_eq!(html.matches("changed their password").count(), 1, "{html}");
        assert!(html.contains("One reconnect fixes these 30 pages") && html.contains("…and 28 more."), "{html}");
        assert!(html.contains("href=\"/app/3/1\"") && html.contains("A &lt;i&gt;") && !html.contains("<b>gone"));
        assert!(html.contains("2 more Facebook users"), "{html}");
        let vi = Locale { lang: Lang::Vi, explicit: true };
        let html = section(vi, "/{inbox_id}", &[flagged(1, vec![inbox(5, "x")])], 1);
        assert!(html.contains("Kết nối lại sẽ khắc phục trang này") && !html.contains("more-groups"), "{html}");
        assert_eq!(section(en, "/", &[], 0), "");
    }
}

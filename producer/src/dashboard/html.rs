//! HTML escaping. The pages are maud templates, which escape every value they are given; text
//! from outside (inbox names, page ids, Graph error messages, what was searched for) is untrusted
//! and goes in as `Text`, which also escapes `'` and replaces control characters.

use chrono::{DateTime, Utc};
use maud::{Markup, Render, html};

use super::i18n::Strings;

/// Escapes text for an HTML element body or a quoted attribute value.
pub fn escape_html(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() + raw.len() / 8);
    for c in raw.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters have no business in a page; keep tabs and newlines.
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Untrusted text in a maud template, escaped by `escape_html`.
#[derive(Debug, Clone, Copy)]
pub struct Text<'a>(pub &'a str);

impl Render for Text<'_> {
    fn render_to(&self, buffer: &mut String) {
        buffer.push_str(&escape_html(self.0));
    }
}

/// "5 min ago" with the exact UTC time as a tooltip; "never" when absent.
pub fn when(t: &Strings, at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Markup {
    let Some(at) = at else { return html! { span.muted { (t.never) } } };
    let secs = (now - at).num_seconds().max(0);
    let text = match secs {
        0..60 => t.just_now.to_owned(),
        60..3_600 => t.minutes_ago.replace("{n}", &(secs / 60).to_string()),
        3_600..86_400 => t.hours_ago.replace("{n}", &(secs / 3_600).to_string()),
        _ => t.days_ago.replace("{n}", &(secs / 86_400).to_string()),
    };
    html! {
        time datetime=(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            title=(at.format("%Y-%m-%d %H:%M:%S UTC")) { (text) }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::dashboard::i18n::EN;

    #[test]
    fn escapes_every_special_character() {
        assert_eq!(
            escape_html(r#"<script>alert("x&'y")</script>"#),
            "&lt;script&gt;alert(&quot;x&amp;&#39;y&quot;)&lt;/script&gt;"
        );
        assert_eq!(escape_html("Trang Việt Nam ✓"), "Trang Việt Nam ✓");
        assert_eq!(escape_html("a\u{0}b\nc"), "a\u{FFFD}b\nc");
        assert_eq!(escape_html(""), "");
    }

    #[test]
    fn text_escapes_as_escape_html_does() {
        let markup = html! { b { (Text("a'<b>\u{0}")) } };
        assert_eq!(markup.into_string(), "<b>a&#39;&lt;b&gt;\u{FFFD}</b>");
    }

    #[test]
    fn relative_times() {
        let now = Utc.with_ymd_and_hms(2025, 1, 2, 12, 0, 0).single().expect("time");
        assert!(when(&EN, None, now).into_string().contains("never"));
        assert!(when(&EN, Some(now), now).into_string().contains(">just now<"));
        assert!(when(&EN, Some(now - chrono::Duration::minutes(5)), now).into_string().contains(">5 min ago<"));
        assert!(when(&EN, Some(now - chrono::Duration::hours(3)), now).into_string().contains(">3 h ago<"));
        assert!(when(&EN, Some(now - chrono::Duration::days(2)), now).into_string().contains("2 days ago"));
        assert!(when(&EN, Some(now), now).into_string().contains("title=\"2025-01-02 12:00:00 UTC\""));
    }
}

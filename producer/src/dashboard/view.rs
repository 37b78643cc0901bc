//! What the dashboard was asked to show (`?status=`, `?q=`, `?page=`) and the links that keep it:
//! a count link keeps the search, a page link keeps both, a new search starts at page 1.

use std::collections::HashMap;

use shared::store::dashboard::Search;

/// The filters offered, in the order of the counts at the top (`attention` is `needs_attention`).
pub const FILTERS: [&str; 6] = ["attention", "reauthorization_required", "retrying", "unknown", "healthy", "refreshed"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// One of [`FILTERS`]; anything else is no filter.
    pub filter: Option<&'static str>,
    pub search: Option<Search>,
    /// As asked for, from 1; the caller clamps it to the pages there are.
    pub page: usize,
}

impl View {
    pub fn parse(query: &HashMap<String, String>) -> Self {
        let filter = query.get("status").and_then(|f| FILTERS.iter().copied().find(|known| known == f));
        let search = query.get("q").and_then(|q| Search::parse(q));
        let page = query.get("page").map_or(1, |p| parse_page(p));
        Self { filter, search, page }
    }

    /// `/` with this view's filter and search, and `status`/`page` in place of its own.
    pub fn href(&self, status: Option<&str>, page: Option<usize>) -> String {
        let mut params = Vec::new();
        if let Some(f) = status {
            params.push(format!("status={f}"));
        }
        if let Some(s) = &self.search {
            params.push(format!("q={}", shared::percent::encode(&s.text)));
        }
        if let Some(p) = page.filter(|p| *p > 1) {
            params.push(format!("page={p}"));
        }
        if params.is_empty() { "/".to_owned() } else { format!("/?{}", params.join("&")) }
    }

    /// This view's own address (page included).
    pub fn here(&self) -> String {
        self.href(self.filter, Some(self.page))
    }
}

/// Malformed or zero: page 1; digits beyond any count: past the end (the caller's last page).
/// Never an error.
fn parse_page(raw: &str) -> usize {
    let raw = raw.trim();
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return 1;
    }
    raw.parse().unwrap_or(usize::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(pairs: &[(&str, &str)]) -> View {
        View::parse(&pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
    }

    #[test]
    fn unknown_filters_and_bad_pages_fall_back() {
        let v = view(&[("status", "nope"), ("page", "abc")]);
        assert_eq!((v.filter, v.page, v.search.is_none()), (None, 1, true));
        assert_eq!(view(&[("page", "0")]).page, 1);
        assert_eq!(view(&[("page", "-3")]).page, 1);
        assert_eq!(view(&[("page", "99999999999999999999999")]).page, usize::MAX, "past the end: the last page");
        assert_eq!(view(&[("status", "healthy"), ("page", "3")]).here(), "/?status=healthy&page=3");
    }

    #[test]
    fn links_keep_the_search_encoded() {
        let v = view(&[("q", " a&b <x> é "), ("status", "attention"), ("page", "2")]);
        assert_eq!(v.href(Some("healthy"), None), "/?status=healthy&q=a%26b%20%3Cx%3E%20%C3%A9");
        assert_eq!(v.href(None, Some(3)), "/?q=a%26b%20%3Cx%3E%20%C3%A9&page=3");
        assert_eq!(view(&[]).href(None, Some(1)), "/");
    }
}

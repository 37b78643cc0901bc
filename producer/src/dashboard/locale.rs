//! The language of a request: `?lang=vi|en` when given (links then keep it), else the preferred
//! language of `Accept-Language` (Vietnamese when that is `vi`), else English.

use axum::http::{HeaderMap, header};

use super::i18n::{EN, Strings, VI};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Vi,
}

/// The language of one request, and whether the user chose it with `?lang=` (then links keep it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locale {
    pub lang: Lang,
    pub explicit: bool,
}

impl Locale {
    pub fn negotiate(query_lang: Option<&str>, headers: &HeaderMap) -> Self {
        match query_lang.map(str::trim) {
            Some("vi") => return Self { lang: Lang::Vi, explicit: true },
            Some("en") => return Self { lang: Lang::En, explicit: true },
            _ => {}
        }
        let accept = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        Self { lang: preferred(accept), explicit: false }
    }

    pub fn t(self) -> &'static Strings {
        match self.lang {
            Lang::En => &EN,
            Lang::Vi => &VI,
        }
    }

    /// `lang=vi` for links and form actions when the user chose the language explicitly.
    pub fn query(self) -> Option<&'static str> {
        self.explicit.then_some(match self.lang {
            Lang::En => "lang=en",
            Lang::Vi => "lang=vi",
        })
    }

    /// `path` with this locale's `?lang=` (if any).
    pub fn link(self, path: &str) -> String {
        match self.query() {
            Some(q) if path.contains('?') => format!("{path}&{q}"),
            Some(q) => format!("{path}?{q}"),
            None => path.to_owned(),
        }
    }

    pub fn html_lang(self) -> &'static str {
        match self.lang {
            Lang::En => "en",
            Lang::Vi => "vi",
        }
    }
}

/// The language with the highest `q` (the first one on ties); Vietnamese when that is `vi*`.
fn preferred(accept: &str) -> Lang {
    let mut best: Option<(f32, &str)> = None;
    for part in accept.split(',') {
        let mut pieces = part.split(';');
        let tag = pieces.next().unwrap_or_default().trim();
        if tag.is_empty() {
            continue;
        }
        let q = pieces
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if best.is_none_or(|(b, _)| q > b) {
            best = Some((q, tag));
        }
    }
    match best {
        Some((_, tag)) if tag.eq_ignore_ascii_case("vi") || tag.to_ascii_lowercase().starts_with("vi-") => Lang::Vi,
        _ => Lang::En,
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn with_accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_str(v).expect("header"));
        h
    }

    #[test]
    fn query_wins_then_accept_language() {
        assert_eq!(Locale::negotiate(Some("vi"), &with_accept("en")).lang, Lang::Vi);
        assert_eq!(Locale::negotiate(Some("en"), &with_accept("vi")).lang, Lang::En);
        assert_eq!(Locale::negotiate(None, &with_accept("vi-VN,vi;q=0.9,en;q=0.8")).lang, Lang::Vi);
        assert_eq!(Locale::negotiate(None, &with_accept("en-US,en;q=0.9,vi;q=0.8")).lang, Lang::En);
        assert_eq!(Locale::negotiate(None, &with_accept("en;q=0.5, vi")).lang, Lang::Vi);
        assert_eq!(Locale::negotiate(Some("fr"), &HeaderMap::new()).lang, Lang::En);
        assert!(!Locale::negotiate(Some("fr"), &HeaderMap::new()).explicit);
    }

    #[test]
    fn links_keep_an_explicit_language() {
        let vi = Locale { lang: Lang::Vi, explicit: true };
        assert_eq!(vi.link("/"), "/?lang=vi");
        assert_eq!(vi.link("/?status=retrying"), "/?status=retrying&lang=vi");
        assert_eq!(Locale { lang: Lang::Vi, explicit: false }.link("/"), "/");
    }
}

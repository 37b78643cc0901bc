//! Rate-limit usage headers: `X-App-Usage` (the app), `X-Business-Use-Case-Usage` and
//! `X-Page-Usage` (one page), and `Retry-After`. Every wait read here is capped by the caller's
//! maximum (`RATE_LIMIT_MAX_WAIT_SECS`): a broken or hostile header must not pause a page, or the
//! app, for years, nor overflow the date arithmetic that schedules the retry.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;

/// Rate-limit usage announced on an answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Highest percentage in `X-App-Usage` (app-wide).
    pub app_pct: Option<u64>,
    /// Highest percentage in `X-Business-Use-Case-Usage` or `X-Page-Usage` (this page).
    pub page_pct: Option<u64>,
    /// `estimated_time_to_regain_access` (or `Retry-After`), capped, when announced.
    pub regain: Option<Duration>,
}

impl Usage {
    pub fn from_headers(headers: &HeaderMap, max_wait: Duration) -> Self {
        Self {
            app_pct: app_usage_percent(headers),
            page_pct: page_usage_percent(headers),
            regain: retry_after_from_headers(headers, max_wait),
        }
    }

    /// A batch item's usage with what the batch answer itself announced: `X-App-Usage` on the
    /// outer answer is about the same app.
    pub fn with_outer(self, outer: Usage) -> Self {
        Self { app_pct: self.app_pct.max(outer.app_pct), page_pct: self.page_pct, regain: self.regain }
    }
}

/// The wait Graph announced, at most `max`: the longest `estimated_time_to_regain_access`
/// (minutes) in `X-Business-Use-Case-Usage`, or `Retry-After` (seconds), whichever is longer.
/// `X-App-Usage` announces no time.
pub fn retry_after_from_headers(headers: &HeaderMap, max: Duration) -> Option<Duration> {
    let minutes = header_json(headers, "x-business-use-case-usage").and_then(|buc| {
        buc.as_object()?
            .values()
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(|entry| entry.get("estimated_time_to_regain_access").and_then(Value::as_u64))
            .max()
    });
    let buc = minutes.filter(|m| *m > 0).map(|m| Duration::from_secs(m.saturating_mul(60)));
    // Only the delta-seconds form: Graph never sends a date, and a proxy's date would be compared
    // with a clock that is not Graph's.
    let retry_after = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map(Duration::from_secs);
    buc.max(retry_after).map(|d| d.min(max))
}

/// The highest usage percentage in any usage header (100 = throttled).
pub fn usage_percent(headers: &HeaderMap) -> Option<u64> {
    app_usage_percent(headers).max(page_usage_percent(headers))
}

pub(crate) fn app_usage_percent(headers: &HeaderMap) -> Option<u64> {
    header_json(headers, "x-app-usage").and_then(|v| percent(&v))
}

pub(crate) fn page_usage_percent(headers: &HeaderMap) -> Option<u64> {
    let buc = header_json(headers, "x-business-use-case-usage")
        .and_then(|v| v.as_object()?.values().filter_map(Value::as_array).flatten().filter_map(percent).max());
    let page = header_json(headers, "x-page-usage").and_then(|v| percent(&v));
    buc.max(page)
}

fn percent(v: &Value) -> Option<u64> {
    ["call_count", "total_time", "total_cputime"].iter().filter_map(|k| v.get(*k).and_then(Value::as_u64)).max()
}

fn header_json(headers: &HeaderMap, name: &str) -> Option<Value> {
    serde_json::from_slice(headers.get(name)?.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    const HOUR: Duration = Duration::from_secs(3_600);

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("ascii"));
        }
        h
    }

    fn buc(minutes: &str) -> HeaderMap {
        headers(&[(
            "x-business-use-case-usage",
            &format!(
                r#"{{"123":[{{"type":"pages","call_count":100,"total_cputime":10,"total_time":10,"estimated_time_to_regain_access":{minutes}}}]}}"#
            ),
        )])
    }

    #[test]
    fn business_use_case_wait_in_minutes() {
        let h = buc("7");
        assert_eq!(retry_after_from_headers(&h, HOUR), Some(Duration::from_secs(420)));
        assert_eq!(usage_percent(&h), Some(100));
        assert_eq!(page_usage_percent(&h), Some(100));
        assert_eq!(app_usage_percent(&h), None);
    }

    #[test]
    fn huge_announced_waits_are_capped() {
        for minutes in ["200000000000", "18446744073709551615", "100000"] {
            assert_eq!(retry_after_from_headers(&buc(minutes), HOUR), Some(HOUR), "{minutes}");
        }
        let h = headers(&[("retry-after", "99999999999999")]);
        assert_eq!(retry_after_from_headers(&h, HOUR), Some(HOUR));
        // Not numbers Graph could mean as a wait: ignored, never a panic.
        for minutes in ["1e300", "-5", "\"5\"", "0", "null"] {
            assert_eq!(retry_after_from_headers(&buc(minutes), HOUR), None, "{minutes}");
        }
    }

    #[test]
    fn retry_after_seconds_count_and_the_longer_wait_wins() {
        assert_eq!(retry_after_from_headers(&headers(&[("retry-after", "30")]), HOUR), Some(Duration::from_secs(30)));
        let mut h = buc("2");
        h.insert("retry-after", HeaderValue::from_static("30"));
        assert_eq!(retry_after_from_headers(&h, HOUR), Some(Duration::from_secs(120)));
        let date = headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]);
        assert_eq!(retry_after_from_headers(&date, HOUR), None);
    }

    #[test]
    fn app_usage_has_no_wait_but_a_percentage() {
        let h = headers(&[("x-app-usage", r#"{"call_count":85,"total_time":20,"total_cputime":30}"#)]);
        assert_eq!(retry_after_from_headers(&h, HOUR), None);
        assert_eq!(usage_percent(&h), Some(85));
        assert_eq!(Usage::from_headers(&h, HOUR), Usage { app_pct: Some(85), page_pct: None, regain: None });
    }

    #[test]
    fn page_usage_header_is_about_the_page() {
        let h = headers(&[("x-page-usage", r#"{"call_count":95,"total_time":1,"total_cputime":1}"#)]);
        assert_eq!(Usage::from_headers(&h, HOUR), Usage { app_pct: None, page_pct: Some(95), regain: None });
    }

    #[test]
    fn a_batch_item_takes_the_outer_app_usage() {
        let item = Usage { app_pct: Some(10), page_pct: Some(50), regain: Some(HOUR) };
        let outer = Usage { app_pct: Some(95), page_pct: Some(99), regain: None };
        assert_eq!(item.with_outer(outer), Usage { app_pct: Some(95), page_pct: Some(50), regain: Some(HOUR) });
    }

    #[test]
    fn garbage_headers_are_ignored() {
        let h = headers(&[("x-app-usage", "not json"), ("x-business-use-case-usage", r#"{"1": "x"}"#)]);
        assert_eq!(retry_after_from_headers(&h, HOUR), None);
        assert_eq!(usage_percent(&h), None);
        assert_eq!(retry_after_from_headers(&HeaderMap::new(), HOUR), None);
    }
}

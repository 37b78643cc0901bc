//! Rate-limit usage headers: `X-App-Usage` and `X-Business-Use-Case-Usage`.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;

/// The wait Graph announced in `X-Business-Use-Case-Usage` (`estimated_time_to_regain_access`,
/// minutes; the longest of all entries), if any. `X-App-Usage` announces no time.
pub fn retry_after_from_headers(headers: &HeaderMap) -> Option<Duration> {
    let buc = header_json(headers, "x-business-use-case-usage")?;
    let minutes = buc
        .as_object()?
        .values()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|entry| entry.get("estimated_time_to_regain_access").and_then(Value::as_u64))
        .max()?;
    (minutes > 0).then(|| Duration::from_secs(minutes.saturating_mul(60)))
}

/// The highest usage percentage in either header (100 = throttled).
pub fn usage_percent(headers: &HeaderMap) -> Option<u64> {
    let pct = |v: &Value| {
        ["call_count", "total_time", "total_cputime"].iter().filter_map(|k| v.get(*k).and_then(Value::as_u64)).max()
    };
    let app = header_json(headers, "x-app-usage").and_then(|v| pct(&v));
    let buc = header_json(headers, "x-business-use-case-usage")
        .and_then(|v| v.as_object()?.values().filter_map(Value::as_array).flatten().filter_map(pct).max());
    app.max(buc)
}

fn header_json(headers: &HeaderMap, name: &str) -> Option<Value> {
    serde_json::from_slice(headers.get(name)?.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("ascii"));
        }
        h
    }

    #[test]
    fn business_use_case_wait_in_minutes() {
        let h = headers(&[(
            "x-business-use-case-usage",
            r#"{"123":[{"type":"pages","call_count":100,"total_cputime":10,"total_time":10,"estimated_time_to_regain_access":7}]}"#,
        )]);
        assert_eq!(retry_after_from_headers(&h), Some(Duration::from_secs(420)));
        assert_eq!(usage_percent(&h), Some(100));
    }

    #[test]
    fn app_usage_has_no_wait_but_a_percentage() {
        let h = headers(&[("x-app-usage", r#"{"call_count":85,"total_time":20,"total_cputime":30}"#)]);
        assert_eq!(retry_after_from_headers(&h), None);
        assert_eq!(usage_percent(&h), Some(85));
    }

    #[test]
    fn garbage_headers_are_ignored() {
        let h = headers(&[("x-app-usage", "not json"), ("x-business-use-case-usage", r#"{"1": "x"}"#)]);
        assert_eq!(retry_after_from_headers(&h), None);
        assert_eq!(usage_percent(&h), None);
        assert_eq!(retry_after_from_headers(&HeaderMap::new()), None);
    }
}

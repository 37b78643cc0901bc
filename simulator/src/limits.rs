//! Rate limits and usage headers: per page (`X-Business-Use-Case-Usage`) and per app (`X-App-Usage`).

use std::collections::HashMap;

use serde_json::json;

use super::{errors::GraphError, reply::Reply};

pub(crate) const APP_USAGE: &str = "X-App-Usage";
pub(crate) const BUC_USAGE: &str = "X-Business-Use-Case-Usage";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PageLimit {
    code: i64,
    regain_minutes: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum AppLimit {
    #[default]
    Off,
    /// The next request only.
    Once,
    UntilCleared,
}

#[derive(Debug, Default)]
pub(crate) struct Limits {
    pages: HashMap<String, PageLimit>,
    app: AppLimit,
    usage_pct: Option<u32>,
    /// Page -> (call_count %, estimated_time_to_regain_access) its successful answers announce.
    page_usage: HashMap<String, (u32, Option<u64>)>,
}

impl Limits {
    pub fn limit_page(&mut self, page_id: &str, code: i64, regain_minutes: Option<u64>) {
        self.pages.insert(page_id.to_owned(), PageLimit { code, regain_minutes });
    }

    pub fn limit_app(&mut self, until_cleared: bool) {
        self.app = if until_cleared { AppLimit::UntilCleared } else { AppLimit::Once };
    }

    pub fn clear(&mut self) {
        self.pages.clear();
        self.app = AppLimit::Off;
        self.page_usage.clear();
    }

    pub fn set_page_usage(&mut self, page_id: &str, usage: Option<(u32, Option<u64>)>) {
        match usage {
            Some(u) => self.page_usage.insert(page_id.to_owned(), u),
            None => self.page_usage.remove(page_id),
        };
    }

    /// The `X-Business-Use-Case-Usage` value an answer about this page carries, when set.
    pub fn page_usage_header(&self, page_id: &str) -> Option<String> {
        let &(pct, regain) = self.page_usage.get(page_id)?;
        Some(json!({ page_id: [buc_entry(pct, regain)] }).to_string())
    }

    pub fn any_page_usage(&self) -> bool {
        !self.page_usage.is_empty()
    }

    pub fn set_usage(&mut self, pct: Option<u32>) {
        self.usage_pct = pct;
    }

    pub fn any_page_limited(&self) -> bool {
        !self.pages.is_empty()
    }

    /// The app-level limit answer, if the app is limited now (a one-shot limit is used up).
    pub fn app_check(&mut self) -> Option<Reply> {
        match self.app {
            AppLimit::Off => return None,
            AppLimit::Once => self.app = AppLimit::Off,
            AppLimit::UntilCleared => {}
        }
        let usage = json!({"call_count": 100, "total_time": 20, "total_cputime": 20});
        Some(Reply::error(&GraphError::rate_limited(4)).with_header(APP_USAGE, usage.to_string()))
    }

    /// The page-level limit answer, if this page is limited.
    pub fn page_check(&self, page_id: &str) -> Option<Reply> {
        let limit = self.pages.get(page_id)?;
        let header = json!({ page_id: [buc_entry(100, limit.regain_minutes)] });
        Some(Reply::error(&GraphError::rate_limited(limit.code)).with_header(BUC_USAGE, header.to_string()))
    }

    /// The `X-App-Usage` value every answer carries, when set.
    pub fn usage_header(&self) -> Option<String> {
        let p = self.usage_pct?;
        Some(json!({"call_count": p, "total_time": p / 2, "total_cputime": p / 2}).to_string())
    }
}

/// One `X-Business-Use-Case-Usage` entry (`estimated_time_to_regain_access` in minutes, left out
/// when `None`).
fn buc_entry(call_count: u32, regain_minutes: Option<u64>) -> serde_json::Value {
    let mut entry = json!({"type": "pages", "call_count": call_count, "total_cputime": 10, "total_time": 10});
    if let (Some(m), Some(obj)) = (regain_minutes, entry.as_object_mut()) {
        obj.insert("estimated_time_to_regain_access".into(), m.into());
    }
    entry
}

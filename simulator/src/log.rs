//! The request log tests count calls with.

use std::{collections::BTreeMap, time::Instant};

/// One request the simulator received: an HTTP request, or one item of a batch (`batch_item`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    /// Without the version prefix: `/me/accounts`, `/123`, `/debug_token`, `/oauth/access_token`,
    /// `/` for a batch.
    pub path: String,
    /// Query parameters and form fields together (a form field wins over a query parameter).
    pub query: BTreeMap<String, String>,
    pub access_token: Option<String>,
    pub appsecret_proof: Option<String>,
    /// `Some` when a proof came with a token and the simulator knows the app secret.
    pub proof_valid: Option<bool>,
    /// Number of items for a batch request, 0 otherwise.
    pub batch_items: usize,
    /// True for an entry describing one item of a batch (logged right after its batch request).
    pub batch_item: bool,
    /// The HTTP status answered (the item's `code` for a batch item); 0 when nothing was answered
    /// (`Hang`, `Drop`).
    pub status: u16,
    pub at: Instant,
}

#[derive(Debug)]
pub(crate) struct RequestLog {
    pub entries: Vec<LoggedRequest>,
    pub enabled: bool,
}

impl Default for RequestLog {
    fn default() -> Self {
        Self { entries: Vec::new(), enabled: true }
    }
}

//! One answer before it goes on the wire, either as an HTTP response or as a batch item.

use serde_json::Value;

use super::errors::GraphError;

pub(crate) const JSON_CT: &str = "application/json; charset=UTF-8";
/// What Facebook puts on each batch item.
pub(crate) const BATCH_ITEM_CT: &str = "text/javascript; charset=UTF-8";

#[derive(Debug, Clone)]
pub(crate) enum ReplyBody {
    /// A JSON document (already serialized).
    Json(String),
    /// Anything else, with its content type.
    Raw { content_type: &'static str, text: String },
    /// Never answer.
    Hang,
    /// Start answering, then break the connection.
    Drop,
}

#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: ReplyBody,
}

impl Reply {
    pub fn json(status: u16, value: &Value) -> Self {
        Self { status, headers: Vec::new(), body: ReplyBody::Json(value.to_string()) }
    }

    pub fn ok(value: &Value) -> Self {
        Self::json(200, value)
    }

    pub fn error(err: &GraphError) -> Self {
        Self::json(err.status, &err.body())
    }

    pub fn raw(status: u16, content_type: &'static str, text: String) -> Self {
        Self { status, headers: Vec::new(), body: ReplyBody::Raw { content_type, text } }
    }

    pub fn special(body: ReplyBody) -> Self {
        Self { status: 0, headers: Vec::new(), body }
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// The status a log entry records: 0 when nothing is answered.
    pub fn logged_status(&self) -> u16 {
        match self.body {
            ReplyBody::Hang | ReplyBody::Drop => 0,
            _ => self.status,
        }
    }
}

impl From<GraphError> for Reply {
    fn from(err: GraphError) -> Self {
        Reply::error(&err)
    }
}

//! The Graph API: a client for the few calls this system makes, and the classification of Graph
//! errors by code and subcode into what the caller must do.

mod batch;
mod client;
mod error;
mod proof;
mod tokens;
mod usage;

pub use batch::MAX_BATCH;
pub(crate) use client::describe as describe_transport;
pub use client::{GraphClient, GraphSettings, PageInfo, PageLookup, Usage, from_error_object};
pub use error::{ErrorKind, GraphError, classify};
pub use proof::appsecret_proof;
pub use tokens::TokenInfo;
pub use usage::{retry_after_from_headers, usage_percent};

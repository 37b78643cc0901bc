//! The Graph API: a client for the few calls this system makes, and the classification of Graph
//! errors by code and subcode into what the caller must do.

mod answer;
mod batch;
mod client;
mod error;
mod proof;
mod scrub;
mod subscriptions;
mod tokens;
mod usage;

pub use answer::from_error_object;
pub use batch::MAX_BATCH;
pub(crate) use client::check_page_id;
pub(crate) use client::describe as describe_transport;
pub use client::{GraphClient, GraphSettings, PageInfo, PageLookup};
pub use error::{ErrorKind, GraphError, classify};
pub use proof::appsecret_proof;
pub use scrub::{REDACTED, mask_token_shapes, scrub};
pub use subscriptions::{CHATWOOT_SUBSCRIBED_FIELDS, MESSAGES_FIELD, SubscribedApp};
pub use tokens::{MESSAGING_SCOPE, TokenInfo};
pub use usage::{Usage, retry_after_from_headers, usage_percent};

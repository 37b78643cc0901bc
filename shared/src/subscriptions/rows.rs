//! The queries of `fb_page_subscriptions` live in the store with every other statement; this name
//! stays so the checks, records and retries here read as before.

pub(crate) use crate::store::subscriptions::{Verdict, claim_due, forget, lease, postpone, save, save_subscribed};

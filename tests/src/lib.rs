//! Test support: every test gets its own Postgres database, its own Redis key prefix and its own
//! Graph simulator, so the suite runs in parallel and repeatably against the real services.

pub mod drain;
pub mod env;
pub mod logs;
pub mod outage;
pub mod tls;
pub mod wait;

pub use env::TestEnv;

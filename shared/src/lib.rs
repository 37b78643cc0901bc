//! What the worker and the producer both need: configuration, the job type, the Graph API client and
//! its error classification, storage (Postgres and the Redis flags), the one-job pipeline and telemetry.

pub mod batch;
pub mod config;
pub mod encryption;
pub mod flags;
pub mod followup;
pub mod graph;
pub mod intake;
pub mod job;
pub mod leases;
pub mod listener;
pub mod locks;
pub mod metrics;
pub mod pauses;
pub mod pending;
pub mod pipeline;
pub mod proactive;
pub mod queue;
pub mod quota;
pub mod redis_ops;
pub mod reports;
pub mod retention;
pub mod retry;
mod scopes;
pub mod secret;
pub mod status;
pub mod store;
pub mod subscriptions;
pub mod sweeps;
pub mod telemetry;
pub mod tls;
pub mod watcher;
pub mod webhooks;

#[cfg(feature = "simulator")]
pub mod simulator;

//! Integration tests against the real Redis and Postgres on 127.0.0.1 and the Graph simulator.

mod admin;
mod api;
mod batch;
mod browser;
mod chatwoot_db;
mod check_all;
mod commands;
mod credentials;
mod cycles;
mod dashboard;
mod faults;
mod leaks;
mod leases;
mod limits;
mod ops;
mod panics;
mod pipeline;
mod proactive;
mod queue;
mod retention;
mod scopes;
mod subscriptions;
mod tls;
mod waiters;
mod watcher;
mod webhooks;

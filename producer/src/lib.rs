//! The producer: decides what gets refreshed and when (the cron cycle, admin commands), and runs the
//! all-in-one demo.

pub mod api;
pub mod app;
pub mod auth;
pub mod check_all;
pub mod cli;
pub mod cron;
pub mod cycle;
pub mod dashboard;
pub mod demo;
pub mod errors;
pub mod manual_refresh;
pub mod progress;
pub mod refresh_all;
pub mod refresh_channel;
pub mod retry_dead;
pub mod serve;
pub mod state;
pub mod table;

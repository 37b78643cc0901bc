//! The producer: decides what gets refreshed and when (the cron cycle, admin commands), and runs the
//! all-in-one demo.

pub mod cli;
pub mod cycle;
pub mod demo;
pub mod refresh_channel;

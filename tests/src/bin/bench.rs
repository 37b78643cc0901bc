//! `bench`: throughput and robustness figures for a refresh cycle and for send-failure storms, and
//! dashboard page views at 100,000 inboxes (`--workloads dashboard`), each
//! on a fresh database, Redis key prefix and Graph simulator, with the real `worker` binary.
//!
//! ```sh
//! cargo build --release -p worker -p tests && target/release/bench --quick
//! ```
//!
//! `bench --help` lists the flags.

#[path = "../bench/mod.rs"]
mod bench;

fn main() -> std::process::ExitCode {
    bench::main()
}

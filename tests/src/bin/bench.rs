//! `bench`: throughput and robustness figures for a refresh cycle and for send-failure storms, each
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

//! The producer binary's `main`, built as this crate's own binary so that its integration tests
//! always run the current code (`CARGO_BIN_EXE_producer-under-test`), never a stale
//! `target/debug/producer` that `cargo test -p tests` did not rebuild.

use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = producer::cli::Cli::parse();
    std::process::exit(producer::cli::run(cli).await);
}

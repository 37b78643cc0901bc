//! Tracing set-up: text or JSON lines, `RUST_LOG` wins over the default `info`.

use std::{fs::File, io::IsTerminal, sync::Mutex};

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::LogFormat;

/// Logs to stderr, so command output on stdout (tables, JSON) stays clean for pipes.
pub fn init_tracing(format: LogFormat) {
    init(format, Sink::Stderr);
}

/// Logs to `file` instead: the demo's terminal shows its progress and tables, and its logs (a
/// warning for every page it seeded broken) stay readable in the file.
pub fn init_tracing_to_file(format: LogFormat, file: File) {
    init(format, Sink::File(Mutex::new(file)));
}

enum Sink {
    Stderr,
    File(Mutex<File>),
}

fn init(format: LogFormat, sink: Sink) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    // A second init (tests, the demo) keeps the first subscriber.
    let _ = match (format, sink) {
        (LogFormat::Text, Sink::Stderr) => registry
            .with(
                fmt::layer().with_target(false).with_ansi(std::io::stderr().is_terminal()).with_writer(std::io::stderr),
            )
            .try_init(),
        (LogFormat::Json, Sink::Stderr) => {
            registry.with(fmt::layer().json().flatten_event(true).with_writer(std::io::stderr)).try_init()
        }
        (LogFormat::Text, Sink::File(file)) => {
            registry.with(fmt::layer().with_target(false).with_ansi(false).with_writer(file)).try_init()
        }
        (LogFormat::Json, Sink::File(file)) => {
            registry.with(fmt::layer().json().flatten_event(true).with_writer(file)).try_init()
        }
    };
}

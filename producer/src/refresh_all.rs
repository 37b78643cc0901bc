//! `producer refresh-all`: enqueue every channel, wait for every result, summarize. Exit 1 if any
//! channel ended needing reauthorization.

use std::io::IsTerminal;

use shared::{config::Config, job::Reason, queue, store};
use tokio_util::sync::CancellationToken;

/// The summary rows, in the order printed.
pub const ROWS: [(&str, &str); 5] = [
    ("healthy", "healthy"),
    ("refreshed", "refreshed"),
    ("reauthorization_required", "needs reauthorization"),
    ("retrying", "retrying"),
    ("unknown", "unknown (gave up)"),
];

pub async fn command(config: &Config, no_wait: bool) -> i32 {
    match refresh_all(config, no_wait, std::io::stderr().is_terminal()).await {
        Ok((code, text)) => {
            println!("{text}");
            code
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            2
        }
    }
}

/// Returns the exit code and the text for stdout. Progress goes to stderr: a bar on a terminal,
/// a plain line every few seconds otherwise.
pub async fn refresh_all(config: &Config, no_wait: bool, terminal: bool) -> anyhow::Result<(i32, String)> {
    let db =
        store::connect_and_migrate(&config.database_url, &config.database_schema, config.database_pool_size(4)).await?;
    let redis = queue::connect(config).await?;
    let started = crate::progress::db_now(&db).await?;
    let count = crate::cycle::enqueue_cycle(&db, redis, config, Reason::Manual).await?;
    let total = count.enqueued + count.skipped;
    let head = format!("enqueued {} channels ({} already queued or running)", count.enqueued, count.skipped);
    if no_wait {
        return Ok((0, head));
    }
    let never = CancellationToken::new();
    let mut progress = crate::progress::Progress::new(total, terminal, "refreshed");
    crate::progress::wait_for_answers(&db, started, total, &never, |done, all| progress.update(done, all)).await?;
    progress.finish();
    let counts = store::status_counts(&db).await?;
    let rows = ROWS.map(|(key, label)| (label, counts.get(key).copied().unwrap_or(0)));
    let text = format!("{head}\n\n{}", crate::table::counts("status", rows));
    let flagged = counts.get("reauthorization_required").copied().unwrap_or(0);
    Ok((if flagged > 0 { 1 } else { 0 }, text))
}

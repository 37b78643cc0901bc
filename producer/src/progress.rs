//! Waiting for a set of channels to have an answer, by reading the token state every job writes.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

pub use shared::store::db_now;

/// Waits until `channels` channels have a state written since `since`, and none is about to be
/// re-checked (a confirmed failure below the threshold is looked at again within seconds; waits on
/// rate limits, minutes away, do not hold this up). Calls `progress(answered, channels)` as it goes.
pub async fn wait_for_answers(
    db: &PgPool,
    since: DateTime<Utc>,
    channels: u64,
    shutdown: &CancellationToken,
    mut progress: impl FnMut(u64, u64),
) -> anyhow::Result<()> {
    loop {
        let (answered, soon) = shared::store::answers_since(db, since).await?;
        progress(answered.min(channels), channels);
        if answered >= channels && soon == 0 {
            return Ok(());
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

/// How a long wait shows itself on stderr: an `indicatif` bar on a terminal; otherwise (a pipe, a
/// log collector) a plain line every few seconds, since a redrawn bar there is noise.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    verb: &'static str,
    /// When the last plain line was printed, and the count it showed.
    last_line: Option<(std::time::Instant, u64)>,
}

impl Progress {
    /// `verb` names what is counted: "refreshed 10/200 channels".
    pub fn new(total: u64, terminal: bool, verb: &'static str) -> Self {
        let bar = terminal.then(|| {
            let bar = indicatif::ProgressBar::new(total);
            // The template is a literal checked by this module's test, so it cannot fail here.
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} channels {msg} ({elapsed})")
            {
                bar.set_style(style);
            }
            bar.set_message(verb);
            bar
        });
        Self { bar, verb, last_line: None }
    }

    pub fn update(&mut self, done: u64, all: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(all);
            bar.set_position(done);
        } else {
            // The last answers can take a while (a retry due in seconds): say "all" once, not per poll.
            let due = match self.last_line {
                None => true,
                Some((_, shown)) if shown == done => false,
                Some((at, _)) => done == all || at.elapsed() >= Duration::from_secs(5),
            };
            if due {
                eprintln!("{} {done}/{all} channels", self.verb);
                self.last_line = Some((std::time::Instant::now(), done));
            }
        }
    }

    /// Leaves the full bar on screen (the table that follows goes below it).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_bar_template_parses() {
        assert!(indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} channels {msg} ({elapsed})").is_ok());
    }
}

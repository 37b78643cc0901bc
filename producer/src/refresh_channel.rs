//! `producer refresh-channel CHANNEL_ID`: one refresh through the queue (or `--inline`), waiting for
//! a settled result. Exit codes as the contract: 0 token valid now, 1 confirmed failure, 2 bad
//! input, 3 not settled in time.

use std::time::Duration;

use shared::worker::WorkerState;
use shared::{
    config::Config,
    job::{JobOutcome, Reason, RefreshJob},
    pending,
    queue::{self, JobReport, Timings, Waited},
    reports::ReportWaiter,
    store,
};

pub const EXIT_VALID: i32 = 0;
pub const EXIT_CONFIRMED_FAILURE: i32 = 1;
pub const EXIT_BAD_INPUT: i32 = 2;
pub const EXIT_NOT_SETTLED: i32 = 3;

/// The longest `--wait`: a day is past any refresh (the longest retry chain is hours), and a
/// bound keeps `now + wait` from overflowing the clock.
pub const MAX_WAIT_SECS: u64 = 86_400;

pub async fn command(config: &Config, channel_id: &str, wait: u64, inline: bool) -> i32 {
    let (code, message) = refresh_channel(config, channel_id, Duration::from_secs(wait), inline).await;
    if code == EXIT_VALID || code == EXIT_CONFIRMED_FAILURE {
        println!("{message}");
    } else {
        eprintln!("{message}");
    }
    code
}

/// Returns the exit code and the line to print.
pub async fn refresh_channel(config: &Config, raw_id: &str, wait: Duration, inline: bool) -> (i32, String) {
    let wait = wait.min(Duration::from_secs(MAX_WAIT_SECS));
    let channel_id = match raw_id.trim().parse::<i64>() {
        Ok(id) if id > 0 && id <= i64::from(i32::MAX) => id,
        _ => return (EXIT_BAD_INPUT, format!("bad input: {raw_id:?} is not a channel id (a positive integer)")),
    };
    match run(config, channel_id, wait, inline).await {
        Ok(result) => result,
        Err(e) => (EXIT_NOT_SETTLED, format!("not settled: {e:#}")),
    }
}

async fn run(config: &Config, channel_id: i64, wait: Duration, inline: bool) -> anyhow::Result<(i32, String)> {
    let db =
        store::connect_and_migrate(&config.database_url, &config.database_schema, config.database_pool_size(2)).await?;
    let page_id = match store::load_channel(&db, &config.codec(), channel_id).await? {
        None => return Ok((EXIT_BAD_INPUT, format!("bad input: no channel_facebook_pages row with id {channel_id}"))),
        // The job settles it as undecryptable, and says so.
        Some(Err(unreadable)) => unreadable.page_id,
        Some(Ok(channel)) => channel.page_id,
    };
    let job = RefreshJob::new(channel_id, Reason::Manual);
    let waited = if inline {
        let state = WorkerState::connect_with_pool(std::sync::Arc::new(config.clone()), Timings::default(), 2).await?;
        let report = shared::worker::handler::handle_job(&state, &job).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        if report.settled { Waited::Settled(report) } else { Waited::RetryScheduled(report) }
    } else {
        let mut redis = queue::connect(config).await?;
        let mut storage = queue::job_storage(redis.clone(), config, &Timings::default());
        let reports = ReportWaiter::start(redis.clone(), std::sync::Arc::new(config.clone()));
        // A refresh already queued or running for the channel answers this request too.
        let claimed = pending::enqueue_or_join(&mut storage, &mut redis, config, job, true).await?;
        reports.wait(claimed.job_id(), wait).await?
    };
    Ok(describe(channel_id, &page_id, wait, &waited))
}

fn describe(channel_id: i64, page_id: &str, wait: Duration, waited: &Waited) -> (i32, String) {
    let who = format!("channel {channel_id} (page {page_id})");
    match waited {
        Waited::Settled(r) => settled(&who, r),
        Waited::RetryScheduled(r) => (
            EXIT_NOT_SETTLED,
            format!(
                "{who}: not settled within {}s: retry scheduled{} (attempt {}){}",
                wait.as_secs(),
                r.next_attempt_at.map(|t| format!(" at {}", t.to_rfc3339())).unwrap_or_default(),
                r.attempt,
                error_suffix(r)
            ),
        ),
        Waited::NoWorker => (
            EXIT_NOT_SETTLED,
            format!(
                "{who}: not settled within {}s: no worker took the job (is a worker running? or use --inline)",
                wait.as_secs()
            ),
        ),
    }
}

fn settled(who: &str, r: &JobReport) -> (i32, String) {
    match r.outcome {
        JobOutcome::Healthy => (EXIT_VALID, format!("{who}: healthy, token valid")),
        JobOutcome::Refreshed => (EXIT_VALID, format!("{who}: refreshed, new token written and valid")),
        JobOutcome::ConfirmedFailure | JobOutcome::ReauthorizationRequired => (
            EXIT_CONFIRMED_FAILURE,
            format!(
                "{who}: {}; authorization error count {}{}",
                if r.outcome == JobOutcome::ReauthorizationRequired {
                    "reauthorization required (flag set)"
                } else {
                    "confirmed failure (counted)"
                },
                r.authorization_error_count.unwrap_or(0),
                error_suffix(r)
            ),
        ),
        JobOutcome::ChannelMissing => (EXIT_BAD_INPUT, format!("bad input: {who} no longer exists")),
        // Nothing was decided about the token: it never reached Graph.
        JobOutcome::Undecryptable => {
            (EXIT_NOT_SETTLED, format!("{who}: not checked, undecryptable{}", error_suffix(r)))
        }
        JobOutcome::Dead => {
            (EXIT_NOT_SETTLED, format!("{who}: not settled: gave up after {} attempts{}", r.attempt, error_suffix(r)))
        }
        other @ (JobOutcome::Retrying | JobOutcome::Superseded) => {
            (EXIT_NOT_SETTLED, format!("{who}: not settled: {other}"))
        }
    }
}

fn error_suffix(r: &JobReport) -> String {
    r.error
        .as_ref()
        .map(|e| match (e.code, e.subcode) {
            (Some(c), Some(s)) => format!(": {} (code {c}, subcode {s})", e.message),
            (Some(c), None) => format!(": {} (code {c})", e.message),
            _ => format!(": {}", e.message),
        })
        .unwrap_or_default()
}

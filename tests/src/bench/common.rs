//! Pieces the workloads share: backlog sampling, concurrent report callers, waiting for the queue
//! to settle.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use shared::{
    graph::GraphError,
    intake::{Intake, parse_report},
    keys::RedisKeys,
    pending, queue,
};
use tokio_util::{sync::CancellationToken, task::AbortOnDropHandle};

use super::{env::BenchEnv, procfs::round};

/// Seconds, to the millisecond.
pub fn secs(d: Duration) -> f64 {
    round(d.as_secs_f64(), 3)
}

/// Nearest-rank percentile (`p` in percent) of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank.min(sorted.len()) - 1).copied()
}

pub fn say(msg: impl AsRef<str>) {
    eprintln!("[bench] {}", msg.as_ref());
}

/// Samples `queue::backlog` every 20 ms until stopped; keeps the peak.
pub struct BacklogSampler {
    stop: CancellationToken,
    task: AbortOnDropHandle<u64>,
}

impl BacklogSampler {
    pub fn start(env: &BenchEnv) -> Self {
        let stop = CancellationToken::new();
        let (mut redis, config, token) = (env.redis.clone(), env.config.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut peak = 0u64;
            while !token.is_cancelled() {
                if let Ok(b) = queue::backlog(&mut redis, &config).await {
                    peak = peak.max(b);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            peak
        });
        Self { stop, task: AbortOnDropHandle::new(task) }
    }

    pub async fn stop(self) -> u64 {
        self.stop.cancel();
        self.task.await.unwrap_or(0)
    }
}

/// What the intake answered to a batch of reports.
#[derive(Debug, Default)]
pub struct Tally {
    pub decisions: BTreeMap<&'static str, u64>,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Tally {
    pub fn json(&self) -> Value {
        json!({"decisions": self.decisions, "errors": self.errors, "first_error": self.first_error})
    }
}

/// The report a messaging service sends when a page token has expired.
pub fn expired_token_report() -> GraphError {
    let body = json!({"error": {
        "message": "Error validating access token: Session has expired on Tuesday, 10-Jun-25 10:00:00 PDT.",
        "type": "OAuthException",
        "code": 190,
        "error_subcode": 463,
        "fbtrace_id": "AbenchTraceId"
    }});
    parse_report(&body).expect("a valid Graph error object")
}

/// Sends `reports` reports through `Intake::report` from `callers` concurrent tasks, report `i`
/// about `channels[i % channels.len()]`, each about a send that failed at `failed_at`.
pub async fn run_reports(
    intake: &Intake,
    channels: Arc<Vec<i64>>,
    reports: usize,
    callers: usize,
    failed_at: DateTime<Utc>,
) -> Tally {
    let error = Arc::new(expired_token_report());
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let progress = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..callers.clamp(1, reports.max(1)) {
        let (intake, channels, error, next, progress) =
            (intake.clone(), channels.clone(), error.clone(), next.clone(), progress.clone());
        tasks.spawn(async move {
            let mut tally = Tally::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= reports || channels.is_empty() {
                    return tally;
                }
                let channel = channels[i % channels.len()];
                match intake.report(channel, &error, Some(failed_at)).await {
                    Ok(d) => *tally.decisions.entry(d.name()).or_default() += 1,
                    Err(e) => {
                        tally.errors += 1;
                        tally.first_error.get_or_insert_with(|| e.to_string());
                    }
                }
                let done = progress.fetch_add(1, Ordering::Relaxed) + 1;
                if done % 20_000 == 0 {
                    say(format!("  {done}/{reports} reports accepted ({:.1} s)", started.elapsed().as_secs_f64()));
                }
            }
        });
    }
    let mut total = Tally::default();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(t) => {
                for (k, v) in t.decisions {
                    *total.decisions.entry(k).or_default() += v;
                }
                total.errors += t.errors;
                if total.first_error.is_none() {
                    total.first_error = t.first_error;
                }
            }
            Err(e) => {
                total.errors += 1;
                total.first_error.get_or_insert_with(|| format!("a caller task failed: {e}"));
            }
        }
    }
    total
}

/// Waits (at most `limit`) until nothing is waiting or deferred in the queue and, for `channel`,
/// no refresh is pending; true when it got there.
pub async fn settle(env: &BenchEnv, channel: Option<i64>, limit: Duration) -> anyhow::Result<bool> {
    let deadline = Instant::now() + limit;
    let intake = env.intake();
    let keys = RedisKeys::of(&env.config);
    let mut redis = env.redis.clone();
    loop {
        let backlog = queue::backlog(&mut redis, &env.config).await?;
        let deferred = intake.deferred_len().await?;
        let pending = match channel {
            Some(ch) => pending::owner(&mut redis, &keys, ch).await?,
            None => None,
        };
        if backlog == 0 && deferred == 0 && pending.is_none() {
            return Ok(true);
        }
        if Instant::now() > deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Moves deferred send-failure refreshes into the queue every 50 ms, as `producer serve` does.
pub struct Drainer {
    stop: CancellationToken,
    task: AbortOnDropHandle<(u64, u64, Option<String>)>,
}

impl Drainer {
    pub fn start(intake: Intake) -> Self {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let (mut moved, mut errors, mut first_error) = (0u64, 0u64, None);
            loop {
                match intake.drain_deferred().await {
                    Ok(n) => moved += n as u64,
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| e.to_string());
                    }
                }
                tokio::select! {
                    () = token.cancelled() => return (moved, errors, first_error),
                    () = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
        });
        Self { stop, task: AbortOnDropHandle::new(task) }
    }

    /// (jobs moved, drain errors, the first error).
    pub async fn stop(self) -> (u64, u64, Option<String>) {
        self.stop.cancel();
        self.task.await.unwrap_or((0, 1, Some("the drainer task failed".into())))
    }
}

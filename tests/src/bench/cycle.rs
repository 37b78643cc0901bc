//! `cycle`: N healthy channels, one worker process, one `enqueue_cycle`; how long until every
//! channel has been validated and its state written. `run_cycle` is also what `scale` (several
//! workers) and `latency` (a cycle in the background) run.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use producer::cycle::{CycleCount, enqueue_cycle};
use serde_json::{Value, json};
use shared::job::Reason;
use tokio_util::sync::CancellationToken;

use super::{
    args::Options,
    common::{BacklogSampler, say, secs},
    env::BenchEnv,
    procfs::{self, Usage, round},
    report::{Outcome, Row},
    stats::{self, PG_STATS_FLUSH, PgStats},
    worker::{Watched, Workers},
};

/// Tells a caller running alongside a cycle when it was enqueued and when it finished.
#[derive(Clone, Default)]
pub struct CycleSignals {
    pub enqueued: CancellationToken,
    pub finished: CancellationToken,
}

/// One cycle as the workers saw it.
pub struct CycleRun {
    pub count: Option<CycleCount>,
    pub enqueue_s: Duration,
    /// Until every expected channel had its state written.
    pub done_s: Option<Duration>,
    pub problem: Option<&'static str>,
    pub peak_backlog: u64,
    /// Graph HTTP requests during the cycle (a batch counts once).
    pub graph_requests: usize,
    /// Items of those batch requests (Facebook counts each against the app's rate limit).
    pub graph_batch_items: usize,
    /// The `cpu` object: where CPU time went during the cycle.
    pub cpu: Value,
}

impl CycleRun {
    pub fn channels_per_s(&self, n: u64) -> Option<f64> {
        self.done_s.map(|d| round(n as f64 / d.as_secs_f64(), 1))
    }
}

/// How long a cycle of `n` channels may take before the bench calls it stuck.
pub fn time_limit(n: u64) -> Duration {
    Duration::from_secs(120) + Duration::from_millis(10) * u32::try_from(n).unwrap_or(u32::MAX)
}

/// Channels that a cycle's batches found healthy since `since`. Not exact (a channel checked twice
/// counts twice, one settled by a single job not at all), but cheap (one row per batch, found by an
/// index), so the wait polls it and runs the exact [`answered`] only once it says the cycle may be
/// done. The exact count scans every state row:
/// polled every 100 ms at 100,000 channels it took 3 of Postgres' 11 CPU-seconds in a first cycle,
/// the observer slowing what it measures.
async fn batch_answers(env: &BenchEnv, since: DateTime<Utc>) -> anyhow::Result<u64> {
    let n: i64 =
        sqlx::query_scalar("SELECT coalesce(sum(healthy), 0)::int8 FROM fb_validation_batches WHERE created_at >= $1")
            .bind(since)
            .fetch_one(&env.db)
            .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Channels (id ≤ `upto`, when given) whose state was written since `since`.
pub async fn answered(env: &BenchEnv, since: DateTime<Utc>, upto: Option<i64>) -> anyhow::Result<u64> {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM fb_token_states
         WHERE updated_at >= $1 AND ($2::integer IS NULL OR channel_id <= $2)
           AND status IN ('healthy', 'refreshed')",
    )
    .bind(since)
    .bind(upto.map(|u| i32::try_from(u).unwrap_or(i32::MAX)))
    .fetch_one(&env.db)
    .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Enqueues a cycle over every channel and waits until `expected` channels (those with id ≤
/// `upto`, when given) have a healthy or refreshed state written since it began.
pub async fn run_cycle(
    env: &BenchEnv,
    workers: &mut Workers,
    expected: u64,
    upto: Option<i64>,
    signals: Option<&CycleSignals>,
    label: &str,
) -> anyhow::Result<CycleRun> {
    let finish = |s: Option<&CycleSignals>| {
        if let Some(s) = s {
            s.enqueued.cancel();
            s.finished.cancel();
        }
    };
    env.sim.reset_log();
    let sampler = BacklogSampler::start(env);
    let usage0 = Usage::take(&workers.pids());
    let limit = time_limit(expected);
    let since = Utc::now();
    let t0 = Instant::now();
    let enqueue = enqueue_cycle(&env.db, env.redis.clone(), &env.config, Reason::Cron);
    let (count, mut problem) = match workers.watch(limit, enqueue).await {
        Watched::Done(Ok(c)) => (Some(c), None),
        Watched::Done(Err(e)) => {
            finish(signals);
            return Err(e.context("enqueue_cycle"));
        }
        Watched::TimedOut => (None, Some("enqueue timed out")),
        Watched::WorkerDied => (None, Some("a worker died while enqueueing")),
    };
    let enqueue_s = t0.elapsed();
    if let Some(s) = signals {
        s.enqueued.cancel();
    }
    let mut done_s = None;
    if problem.is_none() {
        say(format!("{label}: enqueued in {:.2} s; waiting for every answer", enqueue_s.as_secs_f64()));
        let wait = async {
            let mut last = Instant::now();
            // Once the exact count has fallen short after the batches said enough (channels beyond
            // `upto`, or settled by single jobs), only the exact count can tell, at a slower pace.
            let mut exact_only = false;
            loop {
                if exact_only || batch_answers(env, since).await? >= expected {
                    let n = answered(env, since, upto).await?;
                    if n >= expected {
                        return anyhow::Ok(());
                    }
                    if exact_only {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    exact_only = true;
                }
                if last.elapsed() >= Duration::from_secs(10) {
                    last = Instant::now();
                    let n = answered(env, since, upto).await?;
                    say(format!("  {n}/{expected} answered ({:.0} s)", t0.elapsed().as_secs_f64()));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        match workers.watch(limit.saturating_sub(t0.elapsed()), wait).await {
            Watched::Done(r) => {
                if let Err(e) = r {
                    finish(signals);
                    return Err(e);
                }
                done_s = Some(t0.elapsed());
            }
            Watched::TimedOut => problem = Some("timed out waiting for answers"),
            Watched::WorkerDied => problem = Some("a worker died"),
        }
    }
    finish(signals);
    let peak_backlog = sampler.stop().await;
    let cpu = Usage::take(&workers.pids()).since(&usage0);
    Ok(CycleRun {
        count,
        enqueue_s,
        done_s,
        problem,
        peak_backlog,
        graph_requests: env.sim.request_count(),
        graph_batch_items: env.sim.batch_item_count(),
        cpu,
    })
}

/// `name`: `cycle`, or `cycle-encrypted` on an encrypted `env`. Two cycles over the same
/// channels: the first finds every channel unchecked (each gets its first state row and history
/// row, and its page's daily subscription check and its user token's daily expiry check are due);
/// the second is every later cycle (healthy stays healthy, the daily checks are not due). The
/// workload's figures are the second's, with the first's under `first`.
pub async fn run(env: &BenchEnv, opts: &Options, exe: &Path, name: &str) -> anyhow::Result<Outcome> {
    let n = opts.channels;
    // Nothing here needs the request log; keeping 100,000 entries would only cost memory.
    env.sim.set_logging(false);
    say(format!("{name}: seeding {n} healthy channels"));
    let t = Instant::now();
    env.seed(n, 1_000_000, 100).await?;
    let seed_s = t.elapsed();
    let (first, first_row, first_ok) = pass(env, opts, exe, &format!("{name} (first)"), seed_s).await?;
    let (mut json, row, ok) = pass(env, opts, exe, name, seed_s).await?;
    json["workload"] = json!(name);
    json["first"] = first;
    Ok(Outcome { json, rows: vec![first_row, row], tables: Vec::new(), ok: ok && first_ok })
}

/// One measured cycle, with a worker process of its own (its Postgres statistics are complete
/// once it exits).
async fn pass(
    env: &BenchEnv,
    opts: &Options,
    exe: &Path,
    name: &str,
    seed_s: Duration,
) -> anyhow::Result<(Value, Row, bool)> {
    let n = opts.channels;
    let mut workers = Workers::start(exe, env, opts.concurrency, 1).await?;
    // Let the seeding's and the worker's start-up statistics reach pg_stat_database first.
    tokio::time::sleep(PG_STATS_FLUSH).await;
    let pg0 = PgStats::take(&env.db).await;
    let redis0 = stats::redis_commands(&env.redis).await;
    say(format!(
        "{name}: enqueueing (latency {} ms, WORKER_CONCURRENCY {})",
        opts.latency.as_millis(),
        opts.concurrency
    ));
    let run = run_cycle(env, &mut workers, n as u64, None, None, name).await?;
    let redis1 = stats::redis_commands(&env.redis).await;
    let healthy: i64 =
        sqlx::query_scalar("SELECT count(*) FROM fb_token_states WHERE status = 'healthy'").fetch_one(&env.db).await?;
    let worker_alive = workers.all_alive();
    let rss = workers.peak_rss_mib();
    let (_, exits) = workers.stop().await;
    // The worker's backends flushed their statistics when they exited; the bench's own idle ones
    // flush within a second.
    tokio::time::sleep(PG_STATS_FLUSH).await;
    let pg1 = PgStats::take(&env.db).await;

    let lost = (n as u64).saturating_sub(u64::try_from(healthy).unwrap_or(0));
    let per_s = run.channels_per_s(n as u64);
    let per_channel = round(run.graph_requests as f64 / n as f64, 3);
    let redis_commands = match (redis0, redis1) {
        (Ok(a), Ok(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let postgres = match (pg0, pg1) {
        (Ok(a), Ok(b)) => b.delta_json(&a, n as u64),
        (Err(e), _) | (_, Err(e)) => json!({"error": format!("{e:#}")}),
    };
    let ok = lost == 0 && worker_alive && run.problem.is_none() && run.peak_backlog <= env.config.queue_backlog_max;
    let json = json!({
        "workload": name,
        "encrypted": env.config.encryption.is_some(),
        "channels": n,
        "latency_ms": opts.latency.as_millis() as u64,
        "concurrency": opts.concurrency,
        "seed_s": secs(seed_s),
        "enqueued": run.count.map(|c| c.enqueued),
        "skipped": run.count.map(|c| c.skipped),
        "enqueue_s": secs(run.enqueue_s),
        "done_s": run.done_s.map(secs),
        "channels_per_s": per_s,
        "graph_requests": run.graph_requests,
        "graph_requests_per_channel": per_channel,
        "graph_batch_items": run.graph_batch_items,
        "graph_batch_items_per_min_per_app": run.done_s.map(|d| round(run.graph_batch_items as f64 * 60.0 / d.as_secs_f64(), 0)),
        "peak_backlog": run.peak_backlog,
        "backlog_max": env.config.queue_backlog_max,
        "backlog_over_max": run.peak_backlog > env.config.queue_backlog_max,
        "redis_commands": redis_commands,
        "redis_commands_per_channel": redis_commands.map(|c| round(c as f64 / n as f64, 2)),
        "redis_commands_source": "INFO stats total_commands_processed, whole server, from enqueue to the last answer",
        "postgres": postgres,
        "healthy": healthy,
        "lost": lost,
        "worker_alive": worker_alive,
        "worker_exit": exits.first().cloned().flatten(),
        "worker_peak_rss_mib": rss,
        "bench_peak_rss_mib": procfs::peak_rss_mib("self"),
        "cpu": run.cpu,
        "problem": run.problem,
        "ok": ok,
    });
    let row = Row {
        workload: name.into(),
        size: format!("{n} ch"),
        first_s: Some(secs(run.enqueue_s)),
        done_s: run.done_s.map(secs),
        per_s,
        graph_per_channel: Some(per_channel),
        refresh_calls: None,
        peak_backlog: Some(run.peak_backlog),
        worker_rss_mib: rss,
        lost,
        worker_ok: worker_alive,
        cpu: json["cpu"].clone(),
    };
    Ok((json, row, ok))
}

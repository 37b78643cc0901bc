//! `cycle`: N healthy channels, one worker process, one `enqueue_cycle`; how long until every
//! channel has been validated and its state written.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use chrono::Utc;
use producer::{cycle::enqueue_cycle, progress::wait_for_answers};
use serde_json::json;
use shared::job::Reason;
use tokio_util::sync::CancellationToken;

use super::{
    args::Options,
    common::{BacklogSampler, say, secs},
    env::BenchEnv,
    procfs::{self, Usage, round},
    report::{Outcome, Row},
    worker::{Watched, WorkerProc},
};

pub async fn run(env: &BenchEnv, opts: &Options, exe: &Path) -> anyhow::Result<Outcome> {
    let n = opts.channels;
    // Nothing here needs the request log; keeping 100,000 entries would only cost memory.
    env.sim.set_logging(false);
    say(format!("cycle: seeding {n} healthy channels"));
    let t = Instant::now();
    env.seed(n, 1_000_000, 100).await?;
    let seed_s = t.elapsed();
    let mut worker = WorkerProc::start(exe, env, opts.concurrency).await?;
    env.sim.reset_log();
    let sampler = BacklogSampler::start(env);
    let usage0 = Usage::take(worker.pid());
    let limit = Duration::from_secs(120) + Duration::from_millis(10) * u32::try_from(n).unwrap_or(u32::MAX);
    say(format!(
        "cycle: enqueueing (latency {} ms, WORKER_CONCURRENCY {})",
        opts.latency.as_millis(),
        opts.concurrency
    ));

    let since = Utc::now();
    let t0 = Instant::now();
    let mut storage = env.storage();
    let enqueue = enqueue_cycle(&env.db, env.redis.clone(), &mut storage, &env.config, Reason::Cron);
    let (count, mut problem) = match worker.watch(limit, enqueue).await {
        Watched::Done(r) => (Some(r?), None),
        Watched::TimedOut => (None, Some("enqueue timed out")),
        Watched::WorkerDied => (None, Some("the worker died while enqueueing")),
    };
    let enqueue_s = t0.elapsed();
    let mut done_s = None;
    if problem.is_none() {
        say(format!("cycle: enqueued in {:.2} s; waiting for every answer", enqueue_s.as_secs_f64()));
        let never = CancellationToken::new();
        let mut last = Instant::now();
        let wait = wait_for_answers(&env.db, since, n as u64, &never, |answered, total| {
            if last.elapsed() >= Duration::from_secs(10) {
                last = Instant::now();
                say(format!("  {answered}/{total} answered ({:.0} s)", t0.elapsed().as_secs_f64()));
            }
        });
        match worker.watch(limit.saturating_sub(t0.elapsed()), wait).await {
            Watched::Done(r) => {
                r?;
                done_s = Some(t0.elapsed());
            }
            Watched::TimedOut => problem = Some("timed out waiting for answers"),
            Watched::WorkerDied => problem = Some("the worker died"),
        }
    }
    let peak_backlog = sampler.stop().await;
    let usage = Usage::take(worker.pid()).since(&usage0);
    let requests = env.sim.request_count();
    let healthy: i64 =
        sqlx::query_scalar("SELECT count(*) FROM fb_token_states WHERE status = 'healthy'").fetch_one(&env.db).await?;
    let worker_alive = worker.alive();
    let rss = worker.peak_rss_mib();
    let exit = worker.stop().await;

    let lost = (n as u64).saturating_sub(u64::try_from(healthy).unwrap_or(0));
    let per_s = done_s.map(|d| round(n as f64 / d.as_secs_f64(), 1));
    let per_channel = round(requests as f64 / n as f64, 3);
    let ok = lost == 0 && worker_alive && problem.is_none() && peak_backlog <= env.config.queue_backlog_max;
    let json = json!({
        "workload": "cycle",
        "channels": n,
        "latency_ms": opts.latency.as_millis() as u64,
        "concurrency": opts.concurrency,
        "seed_s": secs(seed_s),
        "enqueued": count.map(|c| c.enqueued),
        "skipped": count.map(|c| c.skipped),
        "enqueue_s": secs(enqueue_s),
        "done_s": done_s.map(secs),
        "channels_per_s": per_s,
        "graph_requests": requests,
        "graph_requests_per_channel": per_channel,
        "peak_backlog": peak_backlog,
        "backlog_max": env.config.queue_backlog_max,
        "backlog_over_max": peak_backlog > env.config.queue_backlog_max,
        "healthy": healthy,
        "lost": lost,
        "worker_alive": worker_alive,
        "worker_exit": exit.map(|s| s.to_string()),
        "worker_peak_rss_mib": rss,
        "bench_peak_rss_mib": procfs::peak_rss_mib("self"),
        "cpu": usage,
        "problem": problem,
        "ok": ok,
    });
    let row = Row {
        workload: "cycle",
        size: format!("{n} ch"),
        first_s: Some(secs(enqueue_s)),
        done_s: done_s.map(secs),
        per_s,
        graph_per_channel: Some(per_channel),
        refresh_calls: None,
        peak_backlog: Some(peak_backlog),
        worker_rss_mib: rss,
        lost,
        worker_ok: worker_alive,
        cpu: json["cpu"].clone(),
    };
    Ok(Outcome { json, row, ok })
}

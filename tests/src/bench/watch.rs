//! `watch`: the watcher of Chatwoot's failure counter at scale. `--channels` channels (Chatwoot's key
//! style), the watcher running in this process as in `producer serve`, a worker process beside it.
//!
//! - Cost: Redis CPU over `idle` seconds without the watcher, then as long with it and no
//!   increment; the difference is the watcher's share. Its own command count comes from its
//!   `fb_token_watcher_redis_commands` counter.
//! - Latency: `--increments` plain `INCR`s of count keys (what Chatwoot's `authorization_error!`
//!   does), one per channel with a dead but refreshable page token, spread evenly over
//!   `--watch-secs`. A sample runs from the INCR to both keys being gone (refreshed).
//!
//! The mode is whatever the shared Redis allows (keyspace notifications are off by default, so
//! the watcher sweeps: the worst case, and Chatwoot's default).

use std::{
    collections::HashMap,
    path::Path,
    time::{Duration, Instant},
};

use redis::AsyncCommands as _;
use serde_json::json;
use shared::{config::FlagStyle, flags::FlagKeys, metrics::Metrics, watcher::CounterWatcher};
use tokio_util::sync::CancellationToken;

use super::{
    args::Options,
    common::{say, secs},
    env::BenchEnv,
    procfs::{Usage, round},
    report::{Outcome, render_table},
    worker::WorkerProc,
};

const KILL_MESSAGE: &str = "Error validating access token: Session has expired.";

fn redis_cpu(usage: &serde_json::Value) -> (f64, f64) {
    (usage["redis_cpu_s"].as_f64().unwrap_or(0.0), usage["wall_s"].as_f64().unwrap_or(1.0).max(0.001))
}

fn percentile(sorted: &[Duration], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).map(|d| round(d.as_secs_f64() * 1000.0, 1))
}

pub async fn run(env: &BenchEnv, opts: &Options, exe: &Path) -> anyhow::Result<Outcome> {
    let mut env_config = env.config.clone();
    env_config.flag_style = FlagStyle::Chatwoot;
    let channels = opts.channels;
    let increments = opts.increments.min(channels);
    let spread = opts.watch_time;
    say(format!("watch: seeding {channels} channels, {increments} of them refreshable targets"));
    let seeded = env.seed(channels, 5_000_000, 100).await?;
    // Targets spread over the id range, each with a dead page token its user token can replace.
    let step = (channels / increments.max(1)).max(1);
    let targets: Vec<usize> = (0..increments).map(|i| i * step).collect();
    for &i in &targets {
        let (page, user) = &seeded.pages[i];
        env.sim.kill_page_token(page, user, 190, Some(463), KILL_MESSAGE);
    }
    let keys = FlagKeys::new(env_config.redis_key_prefix.clone(), FlagStyle::Chatwoot);
    let mut worker = WorkerProc::start_with(exe, env, opts.concurrency, &[("REDIS_FLAG_KEYS", "chatwoot")]).await?;

    let idle = if opts.quick { Duration::from_secs(3) } else { Duration::from_secs(15) };
    say(format!("watch: Redis CPU for {}s without the watcher, then {}s with it", idle.as_secs(), idle.as_secs()));
    let u0 = Usage::take(&[]);
    tokio::time::sleep(idle).await;
    let (base_cpu, base_wall) = redis_cpu(&Usage::take(&[]).since(&u0));

    let metrics = Metrics::default();
    let mut intake = env.intake();
    intake.config = std::sync::Arc::new(env_config);
    let watcher = CounterWatcher::new(intake.clone(), metrics.clone());
    let mode = watcher.mode().await;
    let stop = CancellationToken::new();
    let task = tokio::spawn(watcher.run(stop.clone()));
    let (c0, s0, u1) = (metrics.watcher_redis_commands.get(), metrics.watcher_sweeps.get(), Usage::take(&[]));
    tokio::time::sleep(idle).await;
    let idle_usage = Usage::take(&[]).since(&u1);
    let (idle_cpu, idle_wall) = redis_cpu(&idle_usage);
    let idle_commands = metrics.watcher_redis_commands.get() - c0;
    let idle_sweeps = metrics.watcher_sweeps.get() - s0;
    let commands_per_s = idle_commands as f64 / idle_wall;
    let share_pct = 100.0 * (idle_cpu / idle_wall - base_cpu / base_wall).max(0.0);
    say(format!(
        "watch: {} mode, {idle_sweeps} sweeps, {commands_per_s:.1} watcher commands/s, Redis CPU {:.2}% -> {:.2}% of a core",
        mode.as_str(),
        100.0 * base_cpu / base_wall,
        100.0 * idle_cpu / idle_wall,
    ));

    say(format!("watch: {increments} Chatwoot increments over {}s", spread.as_secs()));
    let mut redis = env.redis.clone();
    let gap = spread / increments.max(1) as u32;
    let t0 = Instant::now();
    let mut outstanding: HashMap<i64, Instant> = HashMap::new();
    let mut latencies: Vec<Duration> = Vec::new();
    let limit = spread + Duration::from_secs(60);
    let (mut next, mut issued) = (t0, 0usize);
    let u2 = Usage::take(&[worker.pid()]);
    let c2 = metrics.watcher_redis_commands.get();
    while (issued < increments || !outstanding.is_empty()) && t0.elapsed() < limit {
        if issued < increments && Instant::now() >= next {
            let ch = seeded.ids[targets[issued]];
            let _: i64 = redis.incr(keys.authorization_error_count(ch), 1).await?;
            outstanding.insert(ch, Instant::now());
            issued += 1;
            next += gap;
        }
        if !outstanding.is_empty() {
            let ids: Vec<i64> = outstanding.keys().copied().collect();
            let count_keys: Vec<String> = ids.iter().map(|&c| keys.authorization_error_count(c)).collect();
            let counts: Vec<Option<i64>> = redis::cmd("MGET").arg(&count_keys).query_async(&mut redis).await?;
            for (ch, count) in ids.into_iter().zip(counts) {
                if count.is_none()
                    && let Some(at) = outstanding.remove(&ch)
                {
                    latencies.push(at.elapsed());
                }
            }
        }
        if !worker.alive() {
            anyhow::bail!("the worker died; its log:\n{}", worker.log_tail(20));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let busy_usage = Usage::take(&[worker.pid()]).since(&u2);
    let busy_commands = metrics.watcher_redis_commands.get() - c2;
    stop.cancel();
    let _ = task.await;
    let worker_ok = worker.stop().await.is_some_and(|s| s.success());
    latencies.sort();
    let refreshed: i64 = sqlx::query_scalar("SELECT count(*) FROM fb_token_states WHERE status = 'refreshed'")
        .fetch_one(&env.db)
        .await?;
    let lost = outstanding.len() as u64;
    let (p50, p99, max) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99), percentile(&latencies, 1.0));
    let ok = lost == 0 && refreshed as usize == increments && worker_ok;
    let observed: HashMap<String, u64> = ["enqueued", "coalesced", "deferred", "already_replaced", "forgotten"]
        .iter()
        .map(|o| {
            let label = shared::metrics::OutcomeLabel { outcome: (*o).to_owned() };
            ((*o).to_owned(), metrics.watcher_observations.get_or_create(&label).get())
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    let json = json!({
        "workload": "watch",
        "ok": ok,
        "channels": channels,
        "increments": increments,
        "spread_s": secs(spread),
        "mode": mode.as_str(),
        "interval_ms": env.config.counter_watch_interval.as_millis() as u64,
        "notice_to_refresh_ms": {"p50": p50, "p99": p99, "max": max},
        "refreshed": refreshed,
        "lost": lost,
        "observations": observed,
        "idle": {
            "sweeps": idle_sweeps,
            "watcher_commands_per_s": round(commands_per_s, 1),
            "redis_cpu_pct_without_watcher": round(100.0 * base_cpu / base_wall, 2),
            "redis_cpu_pct_with_watcher": round(100.0 * idle_cpu / idle_wall, 2),
            "watcher_redis_cpu_pct": round(share_pct, 2),
        },
        "during": {
            "watcher_commands_per_s": round(busy_commands as f64 / redis_cpu(&busy_usage).1, 1),
            "cpu": busy_usage,
        },
        "worker_ok": worker_ok,
    });
    let table = render_table(
        &["mode", "channels", "incr", "p50 ms", "p99 ms", "max ms", "watcher cmd/s", "watcher Redis CPU %", "lost"],
        &[vec![
            mode.as_str().to_owned(),
            channels.to_string(),
            increments.to_string(),
            super::report::fixed(p50, 1),
            super::report::fixed(p99, 1),
            super::report::fixed(max, 1),
            format!("{commands_per_s:.1}"),
            format!("{share_pct:.2}"),
            lost.to_string(),
        ]],
    );
    Ok(Outcome {
        json,
        rows: Vec::new(),
        tables: vec![("watch: Chatwoot's increments, notice to refresh".to_owned(), table)],
        ok,
    })
}

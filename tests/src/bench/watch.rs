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
//! First in the mode the shared Redis is in (notifications are off by default, so the watcher
//! sweeps: the worst case, and Chatwoot's default); then, when `CONFIG SET` is allowed, the same
//! with `notify-keyspace-events K$g` on other targets, the setting restored afterwards.

use std::{
    collections::HashMap,
    path::Path,
    time::{Duration, Instant},
};

use redis::AsyncCommands as _;
use serde_json::json;
use shared::{config::FlagStyle, keys::RedisKeys, metrics::Metrics, watcher::CounterWatcher};
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

/// Milliseconds at the `p`-th percentile (nearest rank) of sorted latencies.
fn percentile(sorted: &[Duration], p: f64) -> Option<f64> {
    let ms: Vec<f64> = sorted.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    super::common::percentile(&ms, p * 100.0).map(|v| round(v, 1))
}

/// What one mode's phase measured.
struct Phase {
    mode: &'static str,
    /// Sorted.
    latencies: Vec<Duration>,
    lost: u64,
    json: serde_json::Value,
    commands_per_s: f64,
    share_pct: f64,
}

pub async fn run(env: &BenchEnv, opts: &Options, exe: &Path) -> anyhow::Result<Outcome> {
    let mut env_config = env.config.clone();
    env_config.flag_style = FlagStyle::Chatwoot;
    let channels = opts.channels;
    let increments = opts.increments.min(channels / 2);
    say(format!("watch: seeding {channels} channels, {} of them refreshable targets", 2 * increments));
    let seeded = env.seed(channels, 5_000_000, 100).await?;
    // Targets spread over the id range, each with a dead page token its user token can replace;
    // each phase gets its own half.
    let step = (channels / (2 * increments).max(1)).max(1);
    let targets: Vec<i64> = (0..2 * increments).map(|i| seeded.ids[i * step]).collect();
    for i in 0..2 * increments {
        let (page, user) = &seeded.pages[i * step];
        env.sim.kill_page_token(page, user, 190, Some(463), KILL_MESSAGE);
    }
    let mut intake = env.intake();
    intake.config = std::sync::Arc::new(env_config);
    let mut worker = WorkerProc::start_with(exe, env, opts.concurrency, &[("REDIS_FLAG_KEYS", "chatwoot")]).await?;

    let mut phases = vec![phase(env, &intake, &targets[..increments], opts, &mut worker).await?];
    // The same with keyspace notifications, when this Redis lets us turn them on for a while.
    let mut redis = env.redis.clone();
    let before: Result<Vec<String>, _> =
        redis::cmd("CONFIG").arg("GET").arg("notify-keyspace-events").query_async(&mut redis).await;
    match before.ok().and_then(|v| v.get(1).cloned()) {
        Some(before) if !before.contains('K') => {
            let _: () = redis::cmd("CONFIG")
                .arg("SET")
                .arg("notify-keyspace-events")
                .arg("K$g")
                .query_async(&mut redis)
                .await?;
            let notified = phase(env, &intake, &targets[increments..], opts, &mut worker).await;
            let _: () = redis::cmd("CONFIG")
                .arg("SET")
                .arg("notify-keyspace-events")
                .arg(&before)
                .query_async(&mut redis)
                .await?;
            phases.push(notified?);
        }
        _ => say("watch: keyspace notifications already on, or CONFIG refused: one phase only"),
    }
    let worker_ok = worker.stop().await.is_some_and(|s| s.success());
    let refreshed: i64 = sqlx::query_scalar("SELECT count(*) FROM fb_token_states WHERE status = 'refreshed'")
        .fetch_one(&env.db)
        .await?;
    let lost: u64 = phases.iter().map(|p| p.lost).sum();
    let ok = lost == 0 && refreshed as usize == increments * phases.len() && worker_ok;
    let lines: Vec<Vec<String>> = phases
        .iter()
        .map(|p| {
            let q = |x| super::report::fixed(percentile(&p.latencies, x), 1);
            vec![
                p.mode.to_owned(),
                channels.to_string(),
                increments.to_string(),
                q(0.5),
                q(0.99),
                q(1.0),
                format!("{:.1}", p.commands_per_s),
                format!("{:.2}", p.share_pct),
                p.lost.to_string(),
            ]
        })
        .collect();
    let table = render_table(
        &["mode", "channels", "incr", "p50 ms", "p99 ms", "max ms", "watcher cmd/s", "watcher Redis CPU %", "lost"],
        &lines,
    );
    let json = json!({
        "workload": "watch",
        "ok": ok,
        "channels": channels,
        "increments": increments,
        "spread_s": secs(opts.watch_time),
        "interval_ms": env.config.counter_watch_interval.as_millis() as u64,
        "refreshed": refreshed,
        "lost": lost,
        "phases": phases.iter().map(|p| p.json.clone()).collect::<Vec<_>>(),
        "worker_ok": worker_ok,
    });
    Ok(Outcome {
        json,
        rows: Vec::new(),
        tables: vec![("watch: Chatwoot's increments, notice to refresh".to_owned(), table)],
        ok,
    })
}

/// The watcher's idle cost in the mode Redis allows now, then `targets.len()` increments spread
/// over `--watch-secs`.
async fn phase(
    env: &BenchEnv,
    intake: &shared::intake::Intake,
    targets: &[i64],
    opts: &Options,
    worker: &mut WorkerProc,
) -> anyhow::Result<Phase> {
    let keys = RedisKeys::new(intake.config.redis_key_prefix.clone(), FlagStyle::Chatwoot);
    let idle = if opts.quick { Duration::from_secs(3) } else { Duration::from_secs(15) };
    say(format!("watch: Redis CPU for {}s without the watcher, then {}s with it", idle.as_secs(), idle.as_secs()));
    let u0 = Usage::take(&[]);
    tokio::time::sleep(idle).await;
    let (base_cpu, base_wall) = redis_cpu(&Usage::take(&[]).since(&u0));

    let metrics = Metrics::default();
    let watcher = CounterWatcher::new(intake.clone(), metrics.clone());
    let mode = watcher.mode().await.as_str();
    let stop = CancellationToken::new();
    let task = tokio::spawn(watcher.run(stop.clone()));
    let (c0, s0, u1) = (metrics.watcher_redis_commands.get(), metrics.watcher_sweeps.get(), Usage::take(&[]));
    tokio::time::sleep(idle).await;
    let (idle_cpu, idle_wall) = redis_cpu(&Usage::take(&[]).since(&u1));
    let idle_commands = metrics.watcher_redis_commands.get() - c0;
    let idle_sweeps = metrics.watcher_sweeps.get() - s0;
    let commands_per_s = idle_commands as f64 / idle_wall;
    let share_pct = 100.0 * (idle_cpu / idle_wall - base_cpu / base_wall).max(0.0);
    say(format!(
        "watch: {mode} mode, {idle_sweeps} sweeps, {commands_per_s:.1} watcher commands/s, Redis CPU {:.2}% -> {:.2}% of a core",
        100.0 * base_cpu / base_wall,
        100.0 * idle_cpu / idle_wall,
    ));

    let spread = opts.watch_time;
    say(format!("watch: {} Chatwoot increments over {}s ({mode})", targets.len(), spread.as_secs()));
    let mut redis = env.redis.clone();
    let gap = spread / targets.len().max(1) as u32;
    let t0 = Instant::now();
    let mut outstanding: HashMap<i64, Instant> = HashMap::new();
    let mut latencies: Vec<Duration> = Vec::new();
    let limit = spread + Duration::from_secs(60);
    let (mut next, mut issued) = (t0, 0usize);
    let u2 = Usage::take(&[worker.pid()]);
    let c2 = metrics.watcher_redis_commands.get();
    while (issued < targets.len() || !outstanding.is_empty()) && t0.elapsed() < limit {
        if issued < targets.len() && Instant::now() >= next {
            let ch = targets[issued];
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
    latencies.sort();
    let observed: HashMap<String, u64> = ["enqueued", "coalesced", "deferred", "already_replaced", "forgotten"]
        .iter()
        .map(|o| {
            let label = shared::metrics::OutcomeLabel { outcome: (*o).to_owned() };
            ((*o).to_owned(), metrics.watcher_observations.get_or_create(&label).get())
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    let lost = outstanding.len() as u64;
    let json = json!({
        "mode": mode,
        "increments": targets.len(),
        "notice_to_refresh_ms": {
            "p50": percentile(&latencies, 0.5), "p99": percentile(&latencies, 0.99), "max": percentile(&latencies, 1.0),
        },
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
    });
    Ok(Phase { mode, latencies, lost, json, commands_per_s, share_pct })
}

//! `scale` (W4): the `cycle` workload with 1, 2, 4 ... worker processes, each at the same
//! `WORKER_CONCURRENCY`. The channels are seeded once; before each run the token states and
//! events are truncated, so every run starts where a fresh `cycle` does.
//!
//! Each worker opens up to `WORKER_CONCURRENCY` Postgres connections: 4 x 32 is more than a
//! default Postgres allows (`max_connections` 100), and the refused connections would also fail
//! whatever else uses that server. So the per-worker concurrency is lowered, when needed, to fit
//! the connections the server has free at the start of the workload; the JSON line and the table
//! say so (`concurrency_per_worker`, `x4 c21`).

use std::{
    path::Path,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use super::{
    args::Options,
    common::{say, secs},
    cycle::run_cycle,
    env::BenchEnv,
    procfs::round,
    report::{Outcome, Row},
    worker::Workers,
};

pub async fn run(env: &BenchEnv, opts: &Options, exe: &Path) -> anyhow::Result<Outcome> {
    let n = opts.channels;
    env.sim.set_logging(false);
    say(format!("scale: seeding {n} healthy channels; worker counts {:?}", opts.worker_counts));
    env.seed(n, 2_000_000, 100).await?;
    let mut runs: Vec<Value> = Vec::new();
    let mut rows: Vec<Row> = Vec::new();
    let mut ok = true;
    let mut first_rate: Option<f64> = None;
    let budget = connection_budget(env).await?;
    say(format!(
        "scale: Postgres max_connections {}, {} in use, {} reserved for superusers: {} for the workers",
        budget.max, budget.in_use, budget.reserved, budget.free
    ));
    for (i, &count) in opts.worker_counts.iter().enumerate() {
        let per_worker = opts.concurrency.min(budget.free / count).max(1);
        if i > 0 {
            sqlx::query("TRUNCATE fb_token_states, fb_token_events").execute(&env.db).await?;
            if !markers_released(env, Duration::from_secs(30)).await? {
                say("scale: some channels were still marked pending 30 s after the last run");
            }
        }
        let mut workers = Workers::start(exe, env, per_worker, count).await?;
        let label = if per_worker < opts.concurrency {
            format!("scale x{count} c{per_worker}")
        } else {
            format!("scale x{count}")
        };
        say(format!("{label}: {count} worker process(es) x WORKER_CONCURRENCY {per_worker}"));
        let run = run_cycle(env, &mut workers, n as u64, None, None, &label).await?;
        let healthy: i64 = sqlx::query_scalar("SELECT count(*) FROM fb_token_states WHERE status = 'healthy'")
            .fetch_one(&env.db)
            .await?;
        let alive = workers.all_alive();
        let rss = workers.peak_rss_mib();
        let (_, exits) = workers.stop().await;
        let lost = (n as u64).saturating_sub(u64::try_from(healthy).unwrap_or(0));
        let per_s = run.channels_per_s(n as u64);
        if first_rate.is_none() {
            first_rate = per_s;
        }
        let speedup = match (per_s, first_rate) {
            (Some(r), Some(f)) if f > 0.0 => Some(round(r / f, 2)),
            _ => None,
        };
        let run_ok = lost == 0 && alive && run.problem.is_none();
        ok &= run_ok;
        let per_channel = round(run.graph_requests as f64 / n as f64, 3);
        runs.push(json!({
            "workers": count,
            "concurrency_per_worker": per_worker,
            "concurrency_capped": per_worker < opts.concurrency,
            "enqueued": run.count.map(|c| c.enqueued),
            "skipped": run.count.map(|c| c.skipped),
            "enqueue_s": secs(run.enqueue_s),
            "done_s": run.done_s.map(secs),
            "channels_per_s": per_s,
            "speedup_vs_first": speedup,
            "graph_requests_per_channel": per_channel,
            "peak_backlog": run.peak_backlog,
            "healthy": healthy,
            "lost": lost,
            "workers_alive": alive,
            "worker_exits": exits,
            "worker_peak_rss_mib_max": rss,
            "cpu": run.cpu,
            "problem": run.problem,
            "ok": run_ok,
        }));
        rows.push(Row {
            workload: label.clone(),
            size: format!("{n} ch"),
            first_s: Some(secs(run.enqueue_s)),
            done_s: run.done_s.map(secs),
            per_s,
            graph_per_channel: Some(per_channel),
            refresh_calls: None,
            peak_backlog: Some(run.peak_backlog),
            worker_rss_mib: rss,
            lost,
            worker_ok: alive,
            cpu: run.cpu.clone(),
        });
        if !run_ok {
            say(format!("{label}: FAILED; not running the larger counts"));
            break;
        }
    }
    let lost: u64 = runs.iter().filter_map(|r| r["lost"].as_u64()).sum();
    let json = json!({
        "workload": "scale",
        "channels": n,
        "latency_ms": opts.latency.as_millis() as u64,
        "concurrency": opts.concurrency,
        "worker_counts": opts.worker_counts,
        "postgres_connections": {
            "max_connections": budget.max,
            "in_use_at_start": budget.in_use,
            "superuser_reserved": budget.reserved,
            "for_workers": budget.free,
            "note": "a worker's pool holds up to WORKER_CONCURRENCY connections; per-worker concurrency is capped so all pools fit",
        },
        "cores": std::thread::available_parallelism().map(|c| c.get()).ok(),
        "runs": runs,
        "lost": lost,
        "ok": ok,
    });
    Ok(Outcome { json, rows, tables: Vec::new(), ok })
}

/// Connections left on the Postgres server for the workers' pools.
struct Budget {
    max: usize,
    in_use: usize,
    reserved: usize,
    free: usize,
}

/// Kept free for this bench's own connections and whoever else connects meanwhile.
const HEADROOM: usize = 12;

async fn connection_budget(env: &BenchEnv) -> anyhow::Result<Budget> {
    let (max, reserved, in_use): (String, String, i64) = sqlx::query_as(
        "SELECT current_setting('max_connections'), current_setting('superuser_reserved_connections'),
                (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')",
    )
    .fetch_one(&env.db)
    .await?;
    let max: usize = max.parse()?;
    let reserved: usize = reserved.parse()?;
    let in_use = usize::try_from(in_use).unwrap_or(0);
    let free = max.saturating_sub(reserved + in_use + HEADROOM).max(2);
    Ok(Budget { max, in_use, reserved, free })
}

/// Waits until no channel's pending marker is left (a finished cycle releases every one).
async fn markers_released(env: &BenchEnv, limit: Duration) -> anyhow::Result<bool> {
    let pattern = format!("{}fb_token_refresh:pending:*", env.config.redis_key_prefix);
    let deadline = Instant::now() + limit;
    let mut redis = env.redis.clone();
    loop {
        let (mut cursor, mut any) = (0u64, false);
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(10_000)
                .query_async(&mut redis)
                .await?;
            any |= !keys.is_empty();
            if any || next == 0 {
                break;
            }
            cursor = next;
        }
        if !any {
            return Ok(true);
        }
        if Instant::now() > deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

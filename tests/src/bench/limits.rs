//! `limits`: what this machine allows, measured in the same run with the same client libraries:
//! - Redis round trips with the `redis` crate (the `ConnectionManager` the service uses): PING and
//!   LPUSH, one at a time on one connection, 100 to a pipeline, 64 tasks sharing one connection
//!   (the service's pattern: the crate pipelines concurrent requests on its one socket), and 64
//!   tasks on 64 connections (as `redis-benchmark -c 64` does).
//! - Postgres single-row `UPDATE ... WHERE id = $1` (autocommit: one commit each) on a scratch
//!   table in the bench database, from 1 and from 32 connections, each on rows of its own.
//!
//! When `cycle` ran earlier in the same run, its cost per channel (Redis commands, Postgres
//! commits, counted by the servers) is set against these: the ceiling each resource alone would
//! put on channels/s, and the share of it the cycle used.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use redis::aio::ConnectionManager;
use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;

use super::{
    args::Options,
    common::say,
    env::BenchEnv,
    procfs::round,
    report::{Outcome, fixed, render_table},
};

const TASKS: usize = 64;
const PIPELINE: usize = 100;
const PG_CONNECTIONS: usize = 32;
const PG_ROWS: i32 = 10_000;

/// Runs `tasks` copies of `body(task, deadline)` (each returns how many operations it did) and
/// returns operations per second over the wall time.
async fn rate<F, Fut>(tasks: usize, time: Duration, body: F) -> anyhow::Result<f64>
where
    F: Fn(usize, Instant) -> Fut,
    Fut: Future<Output = anyhow::Result<u64>> + Send + 'static,
{
    let started = Instant::now();
    let deadline = started + time;
    let handles: Vec<_> = (0..tasks).map(|t| tokio::spawn(body(t, deadline))).collect();
    let mut ops = 0u64;
    for h in handles {
        ops += h.await.context("a measuring task panicked")??;
    }
    Ok(ops as f64 / started.elapsed().as_secs_f64())
}

#[derive(Clone, Copy)]
enum Op {
    Ping,
    Lpush,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Ping => "PING",
            Op::Lpush => "LPUSH",
        }
    }

    fn cmd(self, key: &str) -> redis::Cmd {
        match self {
            Op::Ping => redis::cmd("PING"),
            Op::Lpush => {
                let mut c = redis::cmd("LPUSH");
                c.arg(key).arg("x");
                c
            }
        }
    }
}

/// Each task loops on its connection until the deadline, `per_trip` commands per round trip.
async fn redis_rate(
    conns: &[ConnectionManager],
    op: Op,
    key: &str,
    per_trip: usize,
    time: Duration,
) -> anyhow::Result<f64> {
    rate(conns.len(), time, |t, deadline| {
        let mut conn = conns[t].clone();
        let key = key.to_owned();
        async move {
            let mut ops = 0u64;
            if per_trip <= 1 {
                let cmd = op.cmd(&key);
                while Instant::now() < deadline {
                    let _: redis::Value = cmd.query_async(&mut conn).await?;
                    ops += 1;
                }
            } else {
                let mut pipe = redis::pipe();
                for _ in 0..per_trip {
                    pipe.add_command(op.cmd(&key)).ignore();
                }
                while Instant::now() < deadline {
                    let _: () = pipe.query_async(&mut conn).await?;
                    ops += per_trip as u64;
                }
            }
            anyhow::Ok(ops)
        }
    })
    .await
}

pub async fn run(env: &BenchEnv, opts: &Options, earlier: &[Value]) -> anyhow::Result<Outcome> {
    let time = opts.limit_time;
    let key = format!("{}limits:list", env.config.redis_key_prefix);
    let shared = shared::queue::connect(&env.config).await?;
    let mut own = Vec::with_capacity(TASKS);
    for _ in 0..TASKS {
        own.push(shared::queue::connect(&env.config).await?);
    }
    let modes: [(&str, Vec<ConnectionManager>, usize); 4] = [
        ("1 connection, 1 at a time", vec![shared.clone()], 1),
        ("1 connection, pipelines of 100", vec![shared.clone()], PIPELINE),
        ("64 tasks on 1 connection", vec![shared.clone(); TASKS], 1),
        ("64 tasks on 64 connections", own, 1),
    ];
    let mut redis_results: Vec<Value> = Vec::new();
    let mut lines: Vec<Vec<String>> = Vec::new();
    for op in [Op::Ping, Op::Lpush] {
        for (mode, conns, per_trip) in &modes {
            let ops_s = redis_rate(conns, op, &key, *per_trip, time).await?;
            let _: () = redis::cmd("DEL").arg(&key).query_async(&mut shared.clone()).await?;
            say(format!("limits: Redis {} {mode}: {ops_s:.0}/s", op.name()));
            redis_results.push(json!({"command": op.name(), "mode": mode, "ops_per_s": round(ops_s, 0)}));
            lines.push(vec![format!("Redis {} ({mode})", op.name()), format!("{ops_s:.0}")]);
        }
    }

    say("limits: Postgres single-row UPDATEs");
    sqlx::query("CREATE TABLE IF NOT EXISTS public.bench_limits (id integer PRIMARY KEY, n bigint NOT NULL DEFAULT 0)")
        .execute(&env.db)
        .await?;
    sqlx::query("INSERT INTO public.bench_limits (id) SELECT generate_series(1, $1) ON CONFLICT DO NOTHING")
        .bind(PG_ROWS)
        .execute(&env.db)
        .await?;
    let pool = PgPoolOptions::new()
        .max_connections(PG_CONNECTIONS as u32)
        .acquire_timeout(Duration::from_secs(30))
        .connect(env.config.database_url.expose())
        .await
        .context("a pool of 32 connections to the bench database")?;
    let mut pg_results: Vec<Value> = Vec::new();
    for conns in [1, PG_CONNECTIONS] {
        let ops_s = rate(conns, time, |t, deadline| {
            let pool = pool.clone();
            async move {
                let mut conn = pool.acquire().await?;
                let mut ops = 0u64;
                // Rows of this task's own: no lock waits between tasks.
                let rows_per_task = PG_ROWS / PG_CONNECTIONS as i32;
                while Instant::now() < deadline {
                    let id = 1 + t as i32 + PG_CONNECTIONS as i32 * (ops as i32 % rows_per_task);
                    sqlx::query("UPDATE public.bench_limits SET n = n + 1 WHERE id = $1")
                        .bind(id)
                        .execute(&mut *conn)
                        .await?;
                    ops += 1;
                }
                anyhow::Ok(ops)
            }
        })
        .await?;
        let mode = if conns == 1 { "1 connection".to_owned() } else { format!("{conns} connections") };
        say(format!("limits: Postgres UPDATE, {mode}: {ops_s:.0}/s"));
        pg_results.push(json!({"connections": conns, "updates_per_s": round(ops_s, 0)}));
        lines.push(vec![format!("Postgres 1-row UPDATE, autocommit ({mode})"), format!("{ops_s:.0}")]);
    }
    pool.close().await;
    sqlx::query("DROP TABLE public.bench_limits").execute(&env.db).await?;

    // The service's pattern: concurrent jobs sharing one multiplexed connection, LPUSH a write.
    let redis_ref = redis_results
        .iter()
        .find(|r| r["command"] == "LPUSH" && r["mode"] == "64 tasks on 1 connection")
        .and_then(|r| r["ops_per_s"].as_f64());
    let pg_ref = pg_results.last().and_then(|r| r["updates_per_s"].as_f64());
    let cycle = earlier.iter().find(|v| v["workload"] == "cycle");
    let (vs_cycle, vs_table) = match cycle {
        Some(c) => compare(c, redis_ref, pg_ref),
        None => (json!(null), None),
    };
    let mut tables = vec![(
        format!(
            "limits: this machine, measured alone ({} s each; redis crate ConnectionManager, sqlx)",
            fixed(Some(time.as_secs_f64()), 1)
        ),
        render_table(&["what", "ops/s"], &lines),
    )];
    if let Some(t) = vs_table {
        tables.push(t);
    }
    let json = json!({
        "workload": "limits",
        "seconds_each": round(time.as_secs_f64(), 2),
        "redis": redis_results,
        "postgres": pg_results,
        "cycle_vs_limits": vs_cycle,
        "ok": true,
    });
    Ok(Outcome { json, rows: Vec::new(), tables, ok: true })
}

/// The cycle's cost per channel against the limits: the ceiling each resource alone puts on
/// channels/s, and the share of it the cycle used.
fn compare(cycle: &Value, redis_ref: Option<f64>, pg_ref: Option<f64>) -> (Value, Option<(String, String)>) {
    let rate = cycle["channels_per_s"].as_f64();
    let redis_per = cycle["redis_commands_per_channel"].as_f64();
    let pg_per = cycle["postgres"]["commits_per_channel"].as_f64();
    let ceiling = |limit: Option<f64>, per: Option<f64>| match (limit, per) {
        (Some(l), Some(p)) if p > 0.0 => Some(l / p),
        _ => None,
    };
    let share = |c: Option<f64>| match (rate, c) {
        (Some(r), Some(c)) if c > 0.0 => Some(round(100.0 * r / c, 1)),
        _ => None,
    };
    let redis_ceiling = ceiling(redis_ref, redis_per);
    let pg_ceiling = ceiling(pg_ref, pg_per);
    let json = json!({
        "cycle_channels": cycle["channels"],
        "cycle_channels_per_s": rate,
        "redis": {
            "commands_per_channel": redis_per,
            "limit_ops_per_s": redis_ref,
            "limit_is": "LPUSH, 64 tasks on 1 connection (the service's pattern), measured alone",
            "ceiling_channels_per_s": redis_ceiling.map(|c| round(c, 0)),
            "cycle_share_pct": share(redis_ceiling),
        },
        "postgres": {
            "commits_per_channel": pg_per,
            "rows_written_per_channel": cycle["postgres"]["rows_written_per_channel"],
            "limit_commits_per_s": pg_ref,
            "limit_is": "single-row UPDATE, autocommit, 32 connections, measured alone",
            "ceiling_channels_per_s": pg_ceiling.map(|c| round(c, 0)),
            "cycle_share_pct": share(pg_ceiling),
        },
        "note": "ceilings are what each resource alone would allow at the cycle's cost per channel, \
                 measured with nothing else running; during the cycle the worker, the simulator, \
                 Postgres and Redis share the same cores",
    });
    let f0 = |v: Option<f64>| fixed(v, 0);
    let pct = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |p| format!("{p:.1}%"));
    let lines = vec![
        vec![
            "Redis commands".to_owned(),
            fixed(redis_per, 2),
            f0(redis_ref),
            f0(redis_ceiling),
            f0(rate),
            pct(share(redis_ceiling)),
        ],
        vec![
            "Postgres commits".to_owned(),
            fixed(pg_per, 3),
            f0(pg_ref),
            f0(pg_ceiling),
            f0(rate),
            pct(share(pg_ceiling)),
        ],
    ];
    let table = render_table(
        &["resource", "cycle per channel", "limit ops/s", "ceiling ch/s", "cycle ch/s", "cycle used"],
        &lines,
    );
    let title = format!(
        "cycle vs limits ({} channels; per channel counted by the servers: Redis INFO total_commands_processed, \
         whole server; pg_stat_database xact_commit, bench database; limits: LPUSH 64 tasks/1 connection, \
         UPDATE 32 connections)",
        cycle["channels"]
    );
    (json, Some((title, table)))
}

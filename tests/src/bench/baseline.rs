//! `baseline`: the cycle's work done the plain way, in this process, with no queue: read every
//! channel once, then 32 tasks take channels one by one and, for each, make one validation call
//! (`GraphClient::validate_page`, `GET /{page}?fields=id,name`) and one `UPDATE` of its state
//! row (autocommit). No batching, no events, no flags, no coalescing, no durability: a job lost
//! with the process is simply not done.
//!
//! When `cycle` ran earlier in the same run, the ratio cycle/baseline says what the design's
//! throughput is against this; the design buys durability, coalescing and backpressure, and
//! (with Graph batch calls) fewer Graph requests; its raw speed may be higher or lower.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use serde_json::{Value, json};
use shared::{graph::GraphClient, secret::Secret};
use sqlx::postgres::PgPoolOptions;

use super::{
    args::Options,
    common::{say, secs},
    env::BenchEnv,
    procfs::{self, Usage, round},
    report::{Outcome, Row, fixed, render_table},
};

/// In flight at once: the worker's default `WORKER_CONCURRENCY`.
const IN_FLIGHT: usize = 32;

#[derive(Default)]
struct Tally {
    validated: u64,
    graph_errors: u64,
    db_errors: u64,
    first_error: Option<String>,
}

pub async fn run(env: &BenchEnv, opts: &Options, earlier: &[Value]) -> anyhow::Result<Outcome> {
    let n = opts.channels;
    env.sim.set_logging(false);
    say(format!("baseline: seeding {n} healthy channels (and a state row each)"));
    env.seed(n, 5_000_000, 100).await?;
    sqlx::query(
        "INSERT INTO fb_token_states (channel_id) SELECT id FROM channel_facebook_pages ON CONFLICT DO NOTHING",
    )
    .execute(&env.db)
    .await?;
    let graph = GraphClient::from_config(&env.config).map_err(|e| anyhow::anyhow!("Graph client: {e}"))?;
    let schema = env.config.database_schema.clone();
    let pool = PgPoolOptions::new()
        .max_connections(IN_FLIGHT as u32)
        .acquire_timeout(Duration::from_secs(30))
        // Where the state rows live, as for the service's own sessions.
        .after_connect(move |conn, _| {
            let schema = schema.clone();
            Box::pin(async move { shared::store::schema::set_search_path(conn, &schema).await })
        })
        .connect(env.config.database_url.expose())
        .await
        .context("a pool of 32 connections to the bench database")?;
    env.sim.reset_log();
    let usage0 = Usage::take(&[]);
    say(format!("baseline: 1 GET + 1 UPDATE per channel, {IN_FLIGHT} in flight, no queue"));

    let t0 = Instant::now();
    let channels: Vec<(i32, String, String)> =
        sqlx::query_as("SELECT id, page_id, page_access_token FROM channel_facebook_pages ORDER BY id")
            .fetch_all(&pool)
            .await?;
    let channels = Arc::new(channels);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let (channels, next, graph, pool) = (channels.clone(), next.clone(), graph.clone(), pool.clone());
        tasks.spawn(async move {
            let mut tally = Tally::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((id, page, token)) = channels.get(i) else { return tally };
                let valid = match graph.validate_page(page, &Secret::new(token.clone())).await {
                    Ok(_) => true,
                    Err(e) => {
                        tally.graph_errors += 1;
                        tally.first_error.get_or_insert_with(|| format!("Graph: {}", e.message));
                        false
                    }
                };
                let updated = sqlx::query(
                    "UPDATE fb_token_states SET status = $2, token_valid = $3, last_checked_at = now(),
                            updated_at = now() WHERE channel_id = $1",
                )
                .bind(id)
                .bind(if valid { "healthy" } else { "unknown" })
                .bind(valid)
                .execute(&pool)
                .await;
                match updated {
                    Ok(_) => tally.validated += u64::from(valid),
                    Err(e) => {
                        tally.db_errors += 1;
                        tally.first_error.get_or_insert_with(|| format!("Postgres: {e}"));
                    }
                }
            }
        });
    }
    let mut total = Tally::default();
    while let Some(joined) = tasks.join_next().await {
        let t = joined.context("a baseline task panicked")?;
        total.validated += t.validated;
        total.graph_errors += t.graph_errors;
        total.db_errors += t.db_errors;
        if total.first_error.is_none() {
            total.first_error = t.first_error;
        }
    }
    let done = t0.elapsed();
    let cpu = Usage::take(&[]).since(&usage0);
    let requests = env.sim.request_count();
    pool.close().await;
    let healthy: i64 =
        sqlx::query_scalar("SELECT count(*) FROM fb_token_states WHERE status = 'healthy'").fetch_one(&env.db).await?;

    let lost = (n as u64).saturating_sub(u64::try_from(healthy).unwrap_or(0));
    let per_s = round(n as f64 / done.as_secs_f64(), 1);
    let per_channel = round(requests as f64 / n as f64, 3);
    let cycle = earlier.iter().find(|v| v["workload"] == "cycle");
    let cycle_rate = cycle.and_then(|c| c["channels_per_s"].as_f64());
    let cycle_graph = cycle.and_then(|c| c["graph_requests_per_channel"].as_f64());
    let ratio = cycle_rate.map(|c| round(c / per_s, 2));
    let ok = lost == 0 && total.db_errors == 0 && total.graph_errors == 0;
    let json = json!({
        "workload": "baseline",
        "channels": n,
        "latency_ms": opts.latency.as_millis() as u64,
        "in_flight": IN_FLIGHT,
        "how": "in-process, no queue: 1 SELECT of all channels, then per channel 1 GET /{page} and 1 UPDATE of its state row (autocommit), 32 at a time",
        "done_s": secs(done),
        "channels_per_s": per_s,
        "graph_requests": requests,
        "graph_requests_per_channel": per_channel,
        "validated": total.validated,
        "graph_errors": total.graph_errors,
        "db_errors": total.db_errors,
        "first_error": total.first_error,
        "healthy": healthy,
        "lost": lost,
        "cycle_channels": cycle.map(|c| c["channels"].clone()),
        "cycle_channels_per_s": cycle_rate,
        "cycle_over_baseline": ratio,
        "cycle_graph_requests_per_channel": cycle_graph,
        "bench_peak_rss_mib": procfs::peak_rss_mib("self"),
        "cpu": cpu,
        "ok": ok,
    });
    let row = Row {
        workload: "baseline".into(),
        size: format!("{n} ch"),
        first_s: None,
        done_s: Some(secs(done)),
        per_s: Some(per_s),
        graph_per_channel: Some(per_channel),
        refresh_calls: None,
        peak_backlog: None,
        worker_rss_mib: None,
        lost,
        worker_ok: true,
        cpu: json["cpu"].clone(),
    };
    let mut tables = Vec::new();
    if let Some(c) = cycle {
        let lines = vec![
            vec![
                format!("design: cycle, 1 worker ({} ch)", c["channels"]),
                fixed(cycle_rate, 0),
                fixed(cycle_graph, 3),
                "queue, batches of 50, events, flags, coalescing".to_owned(),
            ],
            vec![
                format!("plain: baseline, in-process ({n} ch)"),
                fixed(Some(per_s), 0),
                fixed(Some(per_channel), 3),
                "1 GET + 1 UPDATE per channel, nothing else".to_owned(),
            ],
            vec!["design / plain".to_owned(), fixed(ratio, 2), ratio_graph(cycle_graph, per_channel), String::new()],
        ];
        tables.push((
            "design vs plain (same simulator latency; design: 32 jobs in flight, a job = a batch of up to 50 channels; plain: 32 channels in flight)".to_owned(),
            render_table(&["", "channels/s", "Graph req/ch", "does"], &lines),
        ));
    }
    Ok(Outcome { json, rows: vec![row], tables, ok })
}

fn ratio_graph(cycle: Option<f64>, plain: f64) -> String {
    match cycle {
        Some(c) if plain > 0.0 => format!("{:.3}", c / plain),
        _ => "-".to_owned(),
    }
}

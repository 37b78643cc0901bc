//! `producer demo`: the whole system in one process against the built-in Graph simulator, on the
//! local Redis and Postgres. It uses a database of its own (`<name>_demo`) and the Redis key prefix
//! `demo:`, so it never touches real channels.

mod seed;

use std::{collections::BTreeMap, time::Duration};

use anyhow::Context as _;
use chrono::Utc;
use shared::{
    config::Config,
    job::Reason,
    queue::{self, Timings},
    secret::Secret,
    simulator::{GraphSim, SimOptions},
    store,
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// End after one full cycle instead of running until Ctrl-C.
    #[arg(long)]
    pub exit_after_cycle: bool,
    /// How many demo channels to seed.
    #[arg(long, default_value_t = 1_000)]
    pub channels: u32,
    /// Simulated Graph API latency per request, in milliseconds.
    #[arg(long, default_value_t = 20)]
    pub latency_ms: u64,
}

pub async fn run(config: Config, args: DemoArgs) -> anyhow::Result<()> {
    let summary = run_demo(config, args).await?;
    println!("{summary}");
    Ok(())
}

/// Runs the demo and returns the last summary table.
pub async fn run_demo(mut config: Config, args: DemoArgs) -> anyhow::Result<String> {
    let sim = GraphSim::start(SimOptions { latency: Duration::from_millis(args.latency_ms), ..SimOptions::default() })
        .await
        .context("cannot start the Graph API simulator")?;
    config.database_url = demo_database(&config.database_url)?;
    if config.redis_key_prefix.is_empty() {
        config.redis_key_prefix = "demo:".into();
    }
    config.fb_graph_url = sim.base_url();
    config.fb_app_id = Some(sim.options().app_id.clone());
    config.fb_app_secret = sim.options().app_secret.clone().map(Secret::new);
    config.worker_metrics_bind = "127.0.0.1:0".parse()?;

    println!(
        "demo: Graph simulator at {}; database {}; Redis prefix {:?}",
        sim.base_url(),
        database_name(&config.database_url),
        config.redis_key_prefix
    );
    let db = store::connect_and_migrate(&config.database_url, 8).await?;
    let mut redis = queue::connect(&config).await?;
    let plan = seed::seed(&db, &mut redis, &config, &sim, args.channels).await?;
    println!("demo: seeded {} channels: {}", args.channels, plan);

    let shutdown = CancellationToken::new();
    tokio::spawn(worker::signals::cancel_on_signal(shutdown.clone()));
    let worker = tokio::spawn(worker::run_with(config.clone(), Timings::default(), shutdown.clone()));

    let started = Utc::now();
    let clock = std::time::Instant::now();
    let mut storage = queue::job_storage(redis.clone(), &config, &Timings::default());
    let enqueued = crate::cycle::enqueue_cycle(&db, redis.clone(), &mut storage, &config, Reason::Cron).await?;
    println!("demo: enqueued {} channels; waiting for the cycle to settle", enqueued.enqueued);
    crate::progress::wait_for_answers(&db, started, u64::from(args.channels), &shutdown, |_, _| {}).await?;
    let mut summary = summarize(&db, &sim, clock.elapsed()).await?;
    if !args.exit_after_cycle && !shutdown.is_cancelled() {
        println!(
            "{summary}\ndemo: cycle done; still running (rate-limited pages retry when their limit ends). Ctrl-C to stop."
        );
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(Duration::from_secs(30)) => {
                    summary = summarize(&db, &sim, clock.elapsed()).await?;
                    println!("{summary}");
                }
            }
        }
    }
    shutdown.cancel();
    worker.await.context("worker task failed")??;
    sim.shutdown().await;
    Ok(summary)
}

async fn summarize(db: &PgPool, sim: &GraphSim, elapsed: Duration) -> anyhow::Result<String> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM fb_token_states GROUP BY status").fetch_all(db).await?;
    let counts: BTreeMap<String, i64> = rows.into_iter().collect();
    let total: i64 = counts.values().sum();
    let mut out = String::from("\nstatus                      channels\n--------------------------  --------\n");
    for status in ["healthy", "refreshed", "reauthorization_required", "retrying", "unknown"] {
        out.push_str(&format!("{status:<26}  {:>8}\n", counts.get(status).copied().unwrap_or(0)));
    }
    out.push_str(&format!("{:<26}  {total:>8}\n", "total"));
    let requests = sim.request_count();
    out.push_str(&format!(
        "Graph API requests: {requests} ({:.2} per channel); elapsed {:.1} s",
        requests as f64 / total.max(1) as f64,
        elapsed.as_secs_f64()
    ));
    Ok(out)
}

fn demo_database(url: &Secret) -> anyhow::Result<Secret> {
    let mut parsed = url::Url::parse(url.expose()).context("DATABASE_URL is not a URL")?;
    let name = parsed.path().trim_start_matches('/').to_owned();
    let name = if name.is_empty() { "fb_token_refresh".to_owned() } else { name };
    let demo = if name.ends_with("_demo") { name } else { format!("{name}_demo") };
    parsed.set_path(&format!("/{demo}"));
    Ok(Secret::new(parsed.to_string()))
}

fn database_name(url: &Secret) -> String {
    url::Url::parse(url.expose()).map(|u| u.path().trim_start_matches('/').to_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_database_is_separate() {
        let d = demo_database(&Secret::new("postgres://postgres@127.0.0.1:5432/fb_token_refresh")).expect("url");
        assert_eq!(d.expose(), "postgres://postgres@127.0.0.1:5432/fb_token_refresh_demo");
        let again = demo_database(&d).expect("url");
        assert_eq!(again.expose(), d.expose());
    }
}

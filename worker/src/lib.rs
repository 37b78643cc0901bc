//! The worker process: consumes refresh jobs from Redis, runs each through the shared pipeline and
//! re-schedules what is not settled.

pub mod batch;
pub mod guard;
pub mod handler;
pub mod http;
pub mod name;
pub mod proactive;
pub mod signals;
pub mod supervise;
pub mod wake;

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use shared::{config::Config, queue::Timings};
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use handler::WorkerState;

/// Runs a worker until `shutdown` is cancelled: connects, migrates, serves `/healthz` and
/// `/metrics`, and supervises the apalis worker loop.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    run_with(config, Timings::default(), shutdown).await
}

pub async fn run_with(config: Config, timings: Timings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let state = WorkerState::connect(Arc::new(config), timings).await?;
    // What the state holds is the config completed from the database (the app credentials).
    let config = state.config.clone();
    let listener = tokio::net::TcpListener::bind(config.worker_metrics_bind)
        .await
        .with_context(|| format!("cannot listen on WORKER_METRICS_BIND={}", config.worker_metrics_bind))?;
    info!(bind = %config.worker_metrics_bind, "worker metrics and health endpoint listening");
    let http = tokio::spawn(http::serve(listener, state.clone(), shutdown.clone()));
    let janitor = tokio::spawn(supervise::sweep_done_jobs(state.clone(), shutdown.clone(), Duration::from_secs(10)));
    let webhooks = tokio::spawn(shared::webhooks::run_delivery(
        state.pipeline.db.clone(),
        config.clone(),
        Some(state.pipeline.metrics.clone()),
        shutdown.clone(),
    ));
    let retention = tokio::spawn(shared::retention::run_retention(
        state.pipeline.db.clone(),
        config.history_retention_days,
        Some(state.pipeline.metrics.clone()),
        shutdown.clone(),
    ));
    let intake = shared::intake::Intake {
        db: state.pipeline.db.clone(),
        redis: state.redis.clone(),
        storage: state.storage.clone(),
        config: config.clone(),
    };
    let drainer = tokio::spawn(intake.run_drainer(shutdown.clone()));
    let subscriptions = tokio::spawn(shared::subscriptions::run_retries(state.pipeline.clone(), shutdown.clone()));
    let result = supervise::run_worker_loop(state, shutdown.clone()).await;
    shutdown.cancel();
    let _ = drainer.await;
    let _ = subscriptions.await;
    let _ = http.await;
    let _ = janitor.await;
    let _ = webhooks.await;
    let _ = retention.await;
    result
}
